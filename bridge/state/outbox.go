package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Outboxes and dead letters.
//
// Bucket layout (top-level names, then one nested bucket per provisioner):
//
//	outbox/<provisioner>/<key>       Item (binary, codec.go): one pending piece of work per key
//	deadletters/<provisioner>/<key>  DeadLetter (JSON): the item and the target's error
//	outbox-seq                       the bucket whose sequence numbers every Put draws from
//
// The key is the directory's stable id of the entry the work is about, so there is at most
// one pending item per entry: a new change for an entry replaces the payload of its pending
// item (coalescing), which is what keeps per-entry order with several workers. The owner
// (bridge/outbound) defines the payload; this file only stores it.
const (
	bucketOutbox      = "outbox"
	bucketDeadLetters = "deadletters"
	bucketOutboxSeq   = "outbox-seq"
)

// Item is one pending piece of outbound work.
type Item struct {
	// Key is the directory's stable id of the entry the work is about.
	Key string `json:"key"`
	// Seq orders items first-come first-served; it is kept when the payload is replaced.
	Seq uint64 `json:"seq"`
	// Gen changes with every Put: a worker that delivered generation g removes the item only
	// if it is still at g, so a change that arrived during the delivery is delivered too.
	Gen uint64 `json:"gen"`
	// Attempts counts failed deliveries (persisted, so max_attempts survives restarts).
	Attempts int `json:"attempts,omitempty"`
	// NotBefore is the earliest time of the next delivery (backoff).
	NotBefore time.Time `json:"not_before,omitzero"`
	// LastError is the error of the last failed delivery.
	LastError string `json:"last_error,omitempty"`
	// Created is when the key got its first pending item; Updated when it last changed.
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
	// Payload is the owner's description of the work.
	Payload json.RawMessage `json:"payload"`
}

// DeadLetter is an item that could not be delivered: after max_attempts, or refused for good.
type DeadLetter struct {
	Item Item `json:"item"`
	// Error is the last error; Status and Body the target's HTTP answer when there was one.
	Error  string    `json:"error"`
	Status int       `json:"status,omitempty"`
	Body   string    `json:"body,omitempty"`
	Failed time.Time `json:"failed"`
}

// Outbox is one provisioner's pending work inside a transaction.
type Outbox struct {
	tx   *Tx
	b    *bolt.Bucket
	name string
}

// DeadLetters is one provisioner's dead-letter store inside a transaction.
type DeadLetters struct {
	b    *bolt.Bucket
	name string
}

// nested returns top/name, creating both in a writable transaction; nil in a View of a
// bucket never written.
func (t *Tx) nested(top, name string) (*bolt.Bucket, error) {
	root := t.tx.Bucket([]byte(top))
	if root == nil {
		if !t.tx.Writable() {
			return nil, nil
		}
		var err error
		if root, err = t.tx.CreateBucket([]byte(top)); err != nil {
			return nil, fmt.Errorf("state: %s: %w", top, err)
		}
	}
	b := root.Bucket([]byte(name))
	if b == nil && t.tx.Writable() {
		var err error
		if b, err = root.CreateBucket([]byte(name)); err != nil {
			return nil, fmt.Errorf("state: %s %q: %w", top, name, err)
		}
	}
	return b, nil
}

// Outbox returns the outbox of provisioner name (empty in a View when never written).
func (t *Tx) Outbox(name string) (*Outbox, error) {
	if name == "" {
		return nil, errors.New("state: outbox: empty provisioner name")
	}
	b, err := t.nested(bucketOutbox, name)
	if err != nil {
		return nil, err
	}
	return &Outbox{tx: t, b: b, name: name}, nil
}

// DeadLetters returns the dead-letter store of provisioner name.
func (t *Tx) DeadLetters(name string) (*DeadLetters, error) {
	if name == "" {
		return nil, errors.New("state: dead letters: empty provisioner name")
	}
	b, err := t.nested(bucketDeadLetters, name)
	if err != nil {
		return nil, err
	}
	return &DeadLetters{b: b, name: name}, nil
}

// OutboxNames lists the provisioners that have an outbox or dead letters in the file,
// including ones no longer configured.
func (t *Tx) OutboxNames() ([]string, error) {
	seen := map[string]bool{}
	var out []string
	for _, top := range []string{bucketOutbox, bucketDeadLetters} {
		root := t.tx.Bucket([]byte(top))
		if root == nil {
			continue
		}
		err := root.ForEachBucket(func(k []byte) error {
			if !seen[string(k)] {
				seen[string(k)] = true
				out = append(out, string(k))
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// nextGen draws a number from the file-wide sequence: unique across keys, deletions and
// restarts.
func (t *Tx) nextGen() (uint64, error) {
	b := t.tx.Bucket([]byte(bucketOutboxSeq))
	if b == nil {
		var err error
		if b, err = t.tx.CreateBucket([]byte(bucketOutboxSeq)); err != nil {
			return 0, fmt.Errorf("state: outbox sequence: %w", err)
		}
	}
	return b.NextSequence()
}

// Get returns the pending item of key; ok is false when there is none.
func (o *Outbox) Get(key string) (Item, bool, error) {
	if o.b == nil {
		return Item{}, false, nil
	}
	v := o.b.Get([]byte(key))
	if v == nil {
		return Item{}, false, nil
	}
	it, err := decodeItem(v)
	if err != nil {
		return Item{}, false, fmt.Errorf("state: outbox %q: %s: %w", o.name, key, err)
	}
	return it, true, nil
}

// Put stores the work for key with payload. When key already has a pending item its payload
// is replaced and its position (Seq), attempt count and backoff are kept; otherwise a new item
// is created. It returns the stored item.
func (o *Outbox) Put(key string, payload json.RawMessage) (Item, error) {
	it, ok, err := o.Get(key)
	if err != nil {
		return Item{}, err
	}
	now := time.Now().UTC()
	gen, err := o.tx.nextGen()
	if err != nil {
		return Item{}, err
	}
	if !ok {
		it = Item{Key: key, Seq: gen, Created: now}
	}
	it.Gen, it.Updated, it.Payload = gen, now, payload
	return it, o.Save(it)
}

// Save writes it back as it is (after a failed delivery: attempts, backoff, error).
func (o *Outbox) Save(it Item) error {
	if o.b == nil {
		return fmt.Errorf("state: outbox %q: %w", o.name, berrors.ErrTxNotWritable)
	}
	if err := o.b.Put([]byte(it.Key), encodeItem(it)); err != nil {
		return fmt.Errorf("state: outbox %q: %w", o.name, err)
	}
	return nil
}

// Delete removes the item of key (a no-op when there is none).
func (o *Outbox) Delete(key string) error {
	if o.b == nil {
		return nil
	}
	if err := o.b.Delete([]byte(key)); err != nil {
		return fmt.Errorf("state: outbox %q: %w", o.name, err)
	}
	return nil
}

// ForEach calls fn for every item in key order; fn's error stops it. fn must not change the
// outbox.
func (o *Outbox) ForEach(fn func(Item) error) error {
	if o.b == nil {
		return nil
	}
	return o.b.ForEach(func(k, v []byte) error {
		it, err := decodeItem(v)
		if err != nil {
			return fmt.Errorf("state: outbox %q: %s: %w", o.name, k, err)
		}
		return fn(it)
	})
}

// Len is the number of pending items. It walks the bucket: for status, not hot paths.
func (o *Outbox) Len() int {
	if o.b == nil {
		return 0
	}
	return o.b.Stats().KeyN
}

// Get returns the dead letter of key.
func (d *DeadLetters) Get(key string) (DeadLetter, bool, error) {
	if d.b == nil {
		return DeadLetter{}, false, nil
	}
	v := d.b.Get([]byte(key))
	if v == nil {
		return DeadLetter{}, false, nil
	}
	var dl DeadLetter
	if err := json.Unmarshal(v, &dl); err != nil {
		return DeadLetter{}, false, fmt.Errorf("state: dead letters %q: %s: %w", d.name, key, err)
	}
	return dl, true, nil
}

// Put stores a dead letter under its item's key (replacing an older one for the same entry).
func (d *DeadLetters) Put(dl DeadLetter) error {
	if d.b == nil {
		return fmt.Errorf("state: dead letters %q: %w", d.name, berrors.ErrTxNotWritable)
	}
	v, err := json.Marshal(dl)
	if err != nil {
		return err
	}
	if err := d.b.Put([]byte(dl.Item.Key), v); err != nil {
		return fmt.Errorf("state: dead letters %q: %w", d.name, err)
	}
	return nil
}

// Delete removes the dead letter of key.
func (d *DeadLetters) Delete(key string) error {
	if d.b == nil {
		return nil
	}
	if err := d.b.Delete([]byte(key)); err != nil {
		return fmt.Errorf("state: dead letters %q: %w", d.name, err)
	}
	return nil
}

// ForEach calls fn for every dead letter in key order.
func (d *DeadLetters) ForEach(fn func(DeadLetter) error) error {
	if d.b == nil {
		return nil
	}
	return d.b.ForEach(func(k, v []byte) error {
		var dl DeadLetter
		if err := json.Unmarshal(v, &dl); err != nil {
			return fmt.Errorf("state: dead letters %q: %s: %w", d.name, k, err)
		}
		return fn(dl)
	})
}

// Len is the number of dead letters (walks the bucket).
func (d *DeadLetters) Len() int {
	if d.b == nil {
		return 0
	}
	return d.b.Stats().KeyN
}

// OnCommit runs fn after the transaction commits (never when it rolls back), outside the
// database lock. In-memory views of the file (queues, counters) update there, so they never
// run ahead of what is durable.
func (t *Tx) OnCommit(fn func()) { t.tx.OnCommit(fn) }

// Batch is Update for many small concurrent writers: calls from several goroutines are
// combined into one transaction (one fsync). fn may run more than once when another call in
// the same batch fails, so it must only depend on what it reads through tx.
func (d *DB) Batch(fn func(tx *Tx) error) error {
	return d.db.Batch(func(btx *bolt.Tx) error { return fn(&Tx{tx: btx}) })
}
