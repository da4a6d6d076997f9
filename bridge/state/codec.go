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

var errTruncated = errors.New("truncated record")

type encoder struct{ b []byte }

func (e *encoder) str(s string) {
	e.b = binary.AppendUvarint(e.b, uint64(len(s)))
	e.b = append(e.b, s...)
}

func (e *encoder) uvarint(u uint64) { e.b = binary.AppendUvarint(e.b, u) }
func (e *encoder) varint(i int64)   { e.b = binary.AppendVarint(e.b, i) }

func (e *encoder) time(t time.Time) {
	if t.IsZero() {
		e.varint(0)
		return
	}
	e.varint(t.UnixNano())
}

type decoder struct {
	b   []byte
	err error
}

func newDecoder(v []byte) *decoder {
	d := &decoder{b: v}
	switch {
	case len(v) == 0:
		d.err = errTruncated
	case v[0] != recordFormat:
		d.err = fmt.Errorf("unknown record format %#x", v[0])
	default:
		d.b = v[1:]
	}
	return d
}

func (d *decoder) str() string {
	if d.err != nil {
		return ""
	}
	n, k := binary.Uvarint(d.b)
	if k <= 0 || n > uint64(len(d.b)-k) {
		d.err = errTruncated
		return ""
	}
	s := string(d.b[k : k+int(n)]) // a copy: bbolt's bytes live only as long as the transaction
	d.b = d.b[k+int(n):]
	return s
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	u, k := binary.Uvarint(d.b)
	if k <= 0 {
		d.err = errTruncated
		return 0
	}
	d.b = d.b[k:]
	return u
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	i, k := binary.Varint(d.b)
	if k <= 0 {
		d.err = errTruncated
		return 0
	}
	d.b = d.b[k:]
	return i
}

func (d *decoder) time() time.Time {
	ns := d.varint()
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}

// rest returns a copy of what is left.
func (d *decoder) rest() []byte {
	if d.err != nil {
		return nil
	}
	out := append([]byte(nil), d.b...)
	d.b = nil
	return out
}

func (d *decoder) done() error {
	if d.err == nil && len(d.b) > 0 {
		d.err = fmt.Errorf("%d bytes after the record", len(d.b))
	}
	return d.err
}

func encodeIDEntry(e IDEntry) []byte {
	enc := encoder{b: make([]byte, 0, 64+len(e.DN)+len(e.Hash)+32*len(e.Extra))}
	enc.b = append(enc.b, recordFormat)
	enc.str(e.DN)
	enc.str(e.Kind)
	enc.str(e.Hash)
	enc.time(e.Updated)
	enc.uvarint(uint64(len(e.Extra)))
	keys := make([]string, 0, len(e.Extra))
	for k := range e.Extra {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if code, ok := extraKeyCodes[k]; ok {
			enc.uvarint(code)
		} else {
			enc.uvarint(0)
			enc.str(k)
		}
		enc.str(e.Extra[k])
	}
	return enc.b
}

func decodeIDEntry(v []byte) (IDEntry, error) {
	d := newDecoder(v)
	e := IDEntry{DN: d.str(), Kind: d.str(), Hash: d.str(), Updated: d.time()}
	if n := d.uvarint(); n > 0 && d.err == nil {
		if n > uint64(len(d.b)) { // each pair takes at least two bytes
			return IDEntry{}, errTruncated
		}
		e.Extra = make(map[string]string, n)
		for range n {
			var k string
			switch code := d.uvarint(); {
			case code == 0:
				k = d.str()
			case code <= uint64(len(extraKeys)):
				k = extraKeys[code-1]
			case d.err == nil:
				d.err = fmt.Errorf("unknown key code %d", code)
			}
			e.Extra[k] = d.str()
		}
	}
	if err := d.done(); err != nil {
		return IDEntry{}, err
	}
	return e, nil
}

func encodeItem(it Item) []byte {
	enc := encoder{b: make([]byte, 0, 48+len(it.Key)+len(it.LastError)+len(it.Payload))}
	enc.b = append(enc.b, recordFormat)
	enc.str(it.Key)
	enc.uvarint(it.Seq)
	enc.uvarint(it.Gen)
	enc.varint(int64(it.Attempts))
	enc.time(it.NotBefore)
	enc.str(it.LastError)
	enc.time(it.Created)
	enc.time(it.Updated)
	enc.b = append(enc.b, it.Payload...)
	return enc.b
}

func decodeItem(v []byte) (Item, error) {
	d := newDecoder(v)
	it := Item{
		Key: d.str(), Seq: d.uvarint(), Gen: d.uvarint(), Attempts: int(d.varint()),
		NotBefore: d.time(), LastError: d.str(), Created: d.time(), Updated: d.time(),
	}
	it.Payload = d.rest()
	if err := d.done(); err != nil {
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
