package bridge

import (
	"net"
	"os"
)

// Notify sends a state line ("READY=1", "STATUS=…", "RELOADING=1", "STOPPING=1") to systemd
// when NOTIFY_SOCKET is set. Not running under systemd is not an error: it returns false.
func Notify(state string) bool {
	sock := os.Getenv("NOTIFY_SOCKET")
	if sock == "" {
		return false
	}
	if sock[0] == '@' {
		sock = "\x00" + sock[1:] // abstract namespace
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		return false
	}
	defer conn.Close()
	_, err = conn.Write([]byte(state))
	return err == nil
}
