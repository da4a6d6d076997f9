package outbound

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestProvisionerDefaults: a spec's unset (or out of range) settings get the documented
// defaults; set ones are kept, at the edge of their range too.
func TestProvisionerDefaults(t *testing.T) {
	h := newHarness(t, Spec{})
	p, err := h.e.newProvisioner(Spec{Name: "x", Target: h.target, Concurrency: -1, MaxAttempts: 0, MinRetryDelay: -time.Second})
	require.NoError(t, err)
	require.Equal(t, DeprovisionDisable, p.spec.Deprovision)
	require.Equal(t, "userName", p.spec.MatchAttribute)
	require.Equal(t, DefaultConcurrency, p.spec.Concurrency)
	require.Equal(t, 1, p.spec.MaxAttempts)
	require.Equal(t, time.Second, p.spec.MinRetryDelay)
	require.Equal(t, time.Second, p.spec.MaxRetryDelay, "raised to min_retry_delay")
	require.Equal(t, time.Hour, p.spec.DeleteWindow)

	p, err = h.e.newProvisioner(Spec{
		Name: "y", Target: h.target, Concurrency: 1, MaxAttempts: 1,
		MinRetryDelay: time.Nanosecond, MaxRetryDelay: time.Nanosecond, DeleteWindow: time.Nanosecond,
	})
	require.NoError(t, err)
	require.Equal(t, 1, p.spec.Concurrency)
	require.Equal(t, 1, p.spec.MaxAttempts)
	require.Equal(t, time.Nanosecond, p.spec.MinRetryDelay)
	require.Equal(t, time.Nanosecond, p.spec.MaxRetryDelay)
	require.Equal(t, time.Nanosecond, p.spec.DeleteWindow)
	require.Contains(t, p.snapAttrs, "entryUUID", "the stable id is always captured")

	p, err = h.e.newProvisioner(Spec{Name: "w", Target: h.target})
	require.NoError(t, err)
	require.Equal(t, time.Second, p.spec.MinRetryDelay, "0 is unset")
	require.Equal(t, time.Hour, p.spec.DeleteWindow, "0 is unset")
	require.Equal(t, DefaultConcurrency, p.spec.Concurrency, "0 is unset")
	require.Equal(t, PaceNone, p.pace.status(time.Now()).Mode, "a target that reports nothing is not paced without rate_limit")

	_, err = h.e.newProvisioner(Spec{Name: "z"})
	require.ErrorContains(t, err, "a provisioner needs a name and a target")
}
