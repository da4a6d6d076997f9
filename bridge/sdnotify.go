package bridge

import (
	"net"
	"os"
	"strconv"
	"time"
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

// WatchdogTimeout is the watchdog timeout systemd asks this process for (WatchdogSec= in the
// unit, passed as WATCHDOG_USEC, for the process WATCHDOG_PID names when set), or 0.
func WatchdogTimeout() time.Duration {
	usec, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64)
	if err != nil || usec <= 0 {
		return 0
	}
	if pid := os.Getenv("WATCHDOG_PID"); pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return 0
	}
	return time.Duration(usec) * time.Microsecond
}
