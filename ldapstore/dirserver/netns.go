package dirserver

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"runtime"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// netNS is a network namespace of its own with its loopback interface up. One OS thread enters
// it for good and serves every request: a process started or a connection dialed through it
// lives in the namespace. That is how a server with fixed ports (Samba's 389, 636, 88, …) runs
// once per test package, while other packages run theirs, each in its own namespace.
type netNS struct {
	reqs chan func()
	done chan struct{}
	once sync.Once
}

// newNetNS creates the namespace (unshare(CLONE_NEWNET), which needs root) and brings up its
// loopback.
func newNetNS() (*netNS, error) {
	ns := &netNS{reqs: make(chan func()), done: make(chan struct{})}
	ready := make(chan error, 1)
	go func() {
		defer close(ns.done)
		// Never unlocked: the thread leaves the host's namespace for good, and the runtime
		// ends it when this goroutine returns rather than reusing it elsewhere.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			ready <- fmt.Errorf("dirserver: unshare(CLONE_NEWNET) (needs root): %w", err)
			return
		}
		if err := loopbackUp(); err != nil {
			ready <- fmt.Errorf("dirserver: bringing up lo in the network namespace: %w", err)
			return
		}
		ready <- nil
		for fn := range ns.reqs {
			fn()
		}
	}()
	if err := <-ready; err != nil {
		<-ns.done
		return nil, err
	}
	return ns, nil
}

// loopbackUp sets IFF_UP on lo in the calling thread's namespace.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP | unix.IFF_RUNNING)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

// do runs fn on the namespace's thread.
func (ns *netNS) do(fn func()) error {
	finished := make(chan struct{})
	select {
	case ns.reqs <- func() { defer close(finished); fn() }:
	case <-ns.done:
		return errors.New("dirserver: the network namespace is closed")
	}
	<-finished
	return nil
}

// start starts cmd inside the namespace. Its parent-death signal is tied to the namespace's
// thread, which lives until close: the process never outlives the test binary.
func (ns *netNS) start(cmd *exec.Cmd) error {
	var err error
	if derr := ns.do(func() { err = cmd.Start() }); derr != nil {
		return derr
	}
	return err
}

// dial connects to 127.0.0.1:port inside the namespace.
func (ns *netNS) dial(port int) (net.Conn, error) {
	var (
		c   net.Conn
		err error
	)
	if derr := ns.do(func() {
		c, err = net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), 5*time.Second)
	}); derr != nil {
		return nil, derr
	}
	return c, err
}

// close ends the namespace's thread; the namespace goes with the last process in it.
func (ns *netNS) close() {
	ns.once.Do(func() { close(ns.reqs) })
	<-ns.done
}

// forwarder relays TCP connections from 127.0.0.1:<free port> in the test's namespace to a port
// inside a netNS, so that tests, ldapmodify and the scimbridge binary reach the server there
// like any other.
type forwarder struct {
	l      net.Listener
	ns     *netNS
	port   int
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

func newForwarder(ns *netNS, port int) (*forwarder, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("dirserver: forwarder: %w", err)
	}
	f := &forwarder{l: l, ns: ns, port: port, conns: map[net.Conn]struct{}{}}
	f.wg.Add(1)
	go f.accept()
	return f, nil
}

// addr is the host-side address, "127.0.0.1:N".
func (f *forwarder) addr() string { return f.l.Addr().String() }

func (f *forwarder) track(c net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	f.conns[c] = struct{}{}
	return true
}

func (f *forwarder) untrack(c net.Conn) {
	f.mu.Lock()
	delete(f.conns, c)
	f.mu.Unlock()
	c.Close()
}

func (f *forwarder) accept() {
	defer f.wg.Done()
	for {
		in, err := f.l.Accept()
		if err != nil {
			return
		}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			if !f.track(in) {
				in.Close()
				return
			}
			defer f.untrack(in)
			out, err := f.ns.dial(f.port)
			if err != nil {
				return
			}
			if !f.track(out) {
				out.Close()
				return
			}
			defer f.untrack(out)
			pipe(in, out)
		}()
	}
}

// pipe copies both ways until either side closes, passing half-closes on.
func pipe(a, b net.Conn) {
	var wg sync.WaitGroup
	cp := func(dst, src net.Conn) {
		defer wg.Done()
		_, _ = io.Copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		} else {
			dst.Close()
		}
	}
	wg.Add(2)
	go cp(a, b)
	go cp(b, a)
	wg.Wait()
}

// dropConnections closes every relayed connection (the server went away) but keeps listening.
func (f *forwarder) dropConnections() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for c := range f.conns {
		c.Close()
	}
}

func (f *forwarder) close() {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	f.l.Close()
	f.dropConnections()
	f.wg.Wait()
}
