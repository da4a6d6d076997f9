// Package watchdog tells systemd the daemon is alive only while its main loops turn: each
// loop beats as it makes progress and says when it waits, and the pings stop when a loop is
// stuck in a call or a shared lock is held past its bound, so that systemd's WatchdogSec=
// restarts a hung daemon.
package watchdog
