package dirserver

import (
	"bytes"
	"fmt"
	"os/exec"
	"strings"
)

func ldapmodify(url, dn, pw, text string) error {
	path, err := exec.LookPath("ldapmodify")
	if err != nil {
		return fmt.Errorf("dirserver: ldapmodify not found (apt-get install -y ldap-utils): %w", err)
	}
	cmd := exec.Command(path, "-x", "-a", "-H", url, "-D", dn, "-w", pw)
	cmd.Stdin = strings.NewReader(text)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("dirserver: ldapmodify: %w: %s", err, strings.TrimSpace(out.String()))
	}
	return nil
}
