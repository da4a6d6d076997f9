package state

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Id-map records and outbox items are stored in a compact binary form (schema version 2):
// every delivery reads its item twice and writes its record once, and at 100,000 users they
// are most of the file, whose pages the daemon maps into memory. Version 1 stored them as
// JSON, which cost a third more bytes and, with the payload validated on every read, most of
// the state file's CPU.
//
// A record is a format byte (recordFormat), then its fields in a fixed order: strings as a
// uvarint length and the bytes, integers as (u)varints, times as varint nanoseconds since
// the Unix epoch in UTC (0 for the zero time). An outbox item ends with its payload, as the
// owner gave it, to the end of the value. A key of an id-map record's Extra is a uvarint: n > 0
// is extraKeys[n-1], 0 is followed by the key as a string.
const recordFormat = 0x02

// extraKeys are the Extra keys every pushed user carries with the default mappings (what
// bridge/outbound records: the target's id, state, mapping digest, and "a:" plus each pushed
// attribute's path). Stored as one byte each, they take a user's record from about 430 bytes
// to about 260. The list is part of the file format: append only, never reorder.
var extraKeys = []string{
	"target_id", "state", "mapping",
	"a:active", "a:userName", "a:externalId", "a:displayName", "a:title", "a:preferredLanguage",
	"a:nickName", "a:profileUrl", "a:userType", "a:locale", "a:timezone",
	"a:name.givenName", "a:name.familyName", "a:name.formatted", "a:name.middleName",
	"a:name.honorificPrefix", "a:name.honorificSuffix",
	`a:emails[type eq "work"].value`, `a:emails[type eq "home"].value`, `a:emails[type eq "other"].value`,
	`a:phoneNumbers[type eq "work"].value`, `a:phoneNumbers[type eq "mobile"].value`,
	`a:phoneNumbers[type eq "home"].value`,
	"a:urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
	"a:urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
	"a:urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:organization",
	"a:urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:costCenter",
	"a:urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:division",
	"a:urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
}

var extraKeyCodes = func() map[string]uint64 {
	m := make(map[string]uint64, len(extraKeys))
	for i, k := range extraKeys {
		m[k] = uint64(i + 1)
	}
	return m
}()

// ErrTruncated is a record (or a payload read with Decoder) that ends before its fields do.
var ErrTruncated = errors.New("truncated record")

// Encoder appends values in the binary form of this file's records; owners that store their
// own payloads in the state file (bridge/outbound's work items) use it too.
type Encoder struct{ B []byte }

// String appends s as a uvarint length and its bytes.
func (e *Encoder) String(s string) {
	e.B = binary.AppendUvarint(e.B, uint64(len(s)))
	e.B = append(e.B, s...)
}

// Uvarint appends an unsigned integer.
func (e *Encoder) Uvarint(u uint64) { e.B = binary.AppendUvarint(e.B, u) }

// Varint appends a signed integer.
func (e *Encoder) Varint(i int64) { e.B = binary.AppendVarint(e.B, i) }

// Time appends t as varint nanoseconds since the Unix epoch, 0 for the zero time.
func (e *Encoder) Time(t time.Time) {
	if t.IsZero() {
		e.Varint(0)
		return
	}
	e.Varint(t.UnixNano())
}

// Decoder reads what an Encoder wrote. The first error sticks: later reads return zero
// values, and Done reports it.
type Decoder struct {
	b   []byte
	err error
}

// NewDecoder reads b. What it returns (strings, Rest) are copies: b may be reused once the
// reads are done.
func NewDecoder(b []byte) *Decoder { return &Decoder{b: b} }

// newRecordDecoder reads a record of this file: the format byte, then the fields.
func newRecordDecoder(v []byte) *Decoder {
	d := &Decoder{b: v}
	switch {
	case len(v) == 0:
		d.err = ErrTruncated
	case v[0] != recordFormat:
		d.err = fmt.Errorf("unknown record format %#x", v[0])
	default:
		d.b = v[1:]
	}
	return d
}

// String reads a string (a copy: bbolt's bytes live only as long as the transaction).
func (d *Decoder) String() string {
	if d.err != nil {
		return ""
	}
	n, k := binary.Uvarint(d.b)
	if k <= 0 || n > uint64(len(d.b)-k) {
		d.err = ErrTruncated
		return ""
	}
	s := string(d.b[k : k+int(n)])
	d.b = d.b[k+int(n):]
	return s
}

// Uvarint reads an unsigned integer.
func (d *Decoder) Uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	u, k := binary.Uvarint(d.b)
	if k <= 0 {
		d.err = ErrTruncated
		return 0
	}
	d.b = d.b[k:]
	return u
}

// Count reads the number of items that follow, each taking at least one byte: a count
// larger than what is left is an error, before anything is allocated for it.
func (d *Decoder) Count() int {
	n := d.Uvarint()
	if d.err == nil && n > uint64(len(d.b)) {
		d.err = ErrTruncated
	}
	if d.err != nil {
		return 0
	}
	return int(n)
}

// Varint reads a signed integer.
func (d *Decoder) Varint() int64 {
	if d.err != nil {
		return 0
	}
	i, k := binary.Varint(d.b)
	if k <= 0 {
		d.err = ErrTruncated
		return 0
	}
	d.b = d.b[k:]
	return i
}

// Byte reads one byte.
func (d *Decoder) Byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.err = ErrTruncated
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

// Time reads what Encoder.Time wrote.
func (d *Decoder) Time() time.Time {
	ns := d.Varint()
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}

// Rest returns a copy of what is left.
func (d *Decoder) Rest() []byte {
	if d.err != nil {
		return nil
	}
	out := append([]byte(nil), d.b...)
	d.b = nil
	return out
}

// Done reports the first error, or bytes left over.
func (d *Decoder) Done() error {
	if d.err == nil && len(d.b) > 0 {
		d.err = fmt.Errorf("%d bytes after the record", len(d.b))
	}
	return d.err
}

func encodeIDEntry(e IDEntry) []byte {
	enc := Encoder{B: make([]byte, 0, 64+len(e.DN)+len(e.Hash)+32*len(e.Extra))}
	enc.B = append(enc.B, recordFormat)
	enc.String(e.DN)
	enc.String(e.Kind)
	enc.String(e.Hash)
	enc.Time(e.Updated)
	enc.Uvarint(uint64(len(e.Extra)))
	keys := make([]string, 0, len(e.Extra))
	for k := range e.Extra {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if code, ok := extraKeyCodes[k]; ok {
			enc.Uvarint(code)
		} else {
			enc.Uvarint(0)
			enc.String(k)
		}
		enc.String(e.Extra[k])
	}
	return enc.B
}

func decodeIDEntry(v []byte) (IDEntry, error) {
	d := newRecordDecoder(v)
	e := IDEntry{DN: d.String(), Kind: d.String(), Hash: d.String(), Updated: d.Time()}
	if n := d.Count(); n > 0 {
		e.Extra = make(map[string]string, n)
		for range n {
			var k string
			switch code := d.Uvarint(); {
			case code == 0:
				k = d.String()
			case code <= uint64(len(extraKeys)):
				k = extraKeys[code-1]
			case d.err == nil:
				d.err = fmt.Errorf("unknown key code %d", code)
			}
			e.Extra[k] = d.String()
		}
	}
	if err := d.Done(); err != nil {
		return IDEntry{}, err
	}
	return e, nil
}

func encodeItem(it Item) []byte {
	enc := Encoder{B: make([]byte, 0, 48+len(it.Key)+len(it.LastError)+len(it.Payload))}
	enc.B = append(enc.B, recordFormat)
	enc.String(it.Key)
	enc.Uvarint(it.Seq)
	enc.Uvarint(it.Gen)
	enc.Varint(int64(it.Attempts))
	enc.Time(it.NotBefore)
	enc.String(it.LastError)
	enc.Time(it.Created)
	enc.Time(it.Updated)
	enc.B = append(enc.B, it.Payload...)
	return enc.B
}

func decodeItem(v []byte) (Item, error) {
	d := newRecordDecoder(v)
	it := Item{
		Key: d.String(), Seq: d.Uvarint(), Gen: d.Uvarint(), Attempts: int(d.Varint()),
		NotBefore: d.Time(), LastError: d.String(), Created: d.Time(), Updated: d.Time(),
	}
	it.Payload = d.Rest()
	if err := d.Done(); err != nil {
		return Item{}, err
	}
	return it, nil
}

// migrateRecords is the 1 → 2 migration: every id-map record and outbox item from JSON to
// the binary form. A value that does not decode fails the migration (and the start): the
// file is left at version 1, untouched.
func migrateRecords(tx *bolt.Tx) error {
	convert := func(top string, recode func([]byte) ([]byte, error)) error {
		root := tx.Bucket([]byte(top))
		if root == nil {
			return nil
		}
		var names [][]byte
		if err := root.ForEachBucket(func(k []byte) error {
			names = append(names, append([]byte(nil), k...))
			return nil
		}); err != nil {
			return err
		}
		for _, name := range names {
			b := root.Bucket(name)
			type kv struct{ k, v []byte }
			var out []kv
			err := b.ForEach(func(k, v []byte) error {
				if v == nil {
					return nil // a nested bucket: none are written there
				}
				nv, err := recode(v)
				if err != nil {
					return fmt.Errorf("%s %q: %s: %w", top, name, k, err)
				}
				out = append(out, kv{append([]byte(nil), k...), nv})
				return nil
			})
			if err != nil {
				return err
			}
			for _, r := range out {
				if err := b.Put(r.k, r.v); err != nil {
					return err
				}
			}
		}
		return nil
	}
	err := convert(string(bucketIDMaps), func(v []byte) ([]byte, error) {
		var e IDEntry
		if err := json.Unmarshal(v, &e); err != nil {
			return nil, err
		}
		return encodeIDEntry(e), nil
	})
	if err != nil {
		return err
	}
	return convert(bucketOutbox, func(v []byte) ([]byte, error) {
		var it Item
		if err := json.Unmarshal(v, &it); err != nil {
			return nil, err
		}
		return encodeItem(it), nil
	})
}
