//go:build !linux

package ldaptest

import (
	"errors"
	"net"
	"os/exec"
)

// netNS needs Linux network namespaces; elsewhere the servers that use one do not start.
type netNS struct{}

var errNoNetNS = errors.New("ldaptest: network namespaces need Linux")

func newNetNS() (*netNS, error)                    { return nil, errNoNetNS }
func (*netNS) start(*exec.Cmd) error               { return errNoNetNS }
func (*netNS) dial(int) (net.Conn, error)          { return nil, errNoNetNS }
func (*netNS) close()                              {}
func newForwarder(*netNS, int) (*forwarder, error) { return nil, errNoNetNS }

type forwarder struct{}

func (*forwarder) addr() string     { return "" }
func (*forwarder) dropConnections() {}
func (*forwarder) close()           {}
