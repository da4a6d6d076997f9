package inbound

import (
	"sync"
	"time"
)

const (
	// snapshotTTL bounds how stale the membership of a paged list may be without VLV.
	snapshotTTL = 10 * time.Second
	// maxSnapshots bounds the memory of the snapshot cache: the least recently built go first.
	maxSnapshots = 8
	// maxSnapshotEntries bounds one snapshot (DNs only).
	maxSnapshotEntries = 1_000_000
)

// snapshotCache keeps the sorted DNs of recent queries, for paging on directories without
// VLV. Concurrent requests for the same query share one enumeration.
type snapshotCache struct {
	mu    sync.Mutex
	gen   uint64
	items map[string]*snapshot
}

type snapshot struct {
	ready chan struct{}
	built time.Time
	gen   uint64
	dns   []string
	err   error
}

func newSnapshotCache() *snapshotCache { return &snapshotCache{items: map[string]*snapshot{}} }

// get returns the snapshot of key, building it with build when missing, expired or older
// than the last clear.
func (c *snapshotCache) get(key string, build func() ([]string, error)) ([]string, error) {
	c.mu.Lock()
	now := time.Now()
	if sn, ok := c.items[key]; ok && sn.gen == c.gen && (sn.built.IsZero() || now.Sub(sn.built) < snapshotTTL) {
		c.mu.Unlock()
		<-sn.ready
		if sn.err == nil {
			return sn.dns, nil
		}
		c.mu.Lock()
		if c.items[key] == sn {
			delete(c.items, key)
		}
		c.mu.Unlock()
		return nil, sn.err
	}
	sn := &snapshot{ready: make(chan struct{}), gen: c.gen}
	c.items[key] = sn
	for k, old := range c.items {
		if len(c.items) <= maxSnapshots {
			break
		}
		if old != sn && (old.gen != c.gen || (!old.built.IsZero() && now.Sub(old.built) >= snapshotTTL)) {
			delete(c.items, k)
		}
	}
	for k, old := range c.items {
		if len(c.items) <= maxSnapshots {
			break
		}
		if old != sn {
			delete(c.items, k)
		}
	}
	c.mu.Unlock()

	sn.dns, sn.err = build()
	c.mu.Lock()
	sn.built = time.Now()
	if sn.err != nil && c.items[key] == sn {
		delete(c.items, key)
	}
	c.mu.Unlock()
	close(sn.ready)
	return sn.dns, sn.err
}

// clear makes every snapshot stale (after a write through this server).
func (c *snapshotCache) clear() {
	c.mu.Lock()
	c.gen++
	c.items = map[string]*snapshot{}
	c.mu.Unlock()
}
