package outbound

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/scimbridge/scimbridge/mapping"
)

// Work items are stored in the outbox in a compact binary form: at the start of an initial
// sync the outbox holds an item per user, each with the entry's attributes, and the state
// file's pages are what the daemon maps into memory. JSON took about 390 bytes for a default
// user and was decoded at every delivery; this form takes about 250 and decodes without
// reflection.
//
// The form is workFormat, then: kind, DN, hash, mapping and reason as strings (a uvarint
// length and the bytes), a flags byte, Changed as varint nanoseconds since the Unix epoch
// (0 for the zero time), and the entry: a uvarint count of attributes, each a name and a
// uvarint count of values. Items written as JSON (before schema version 2, and every dead
// letter's, which the state file keeps as JSON) start with '{' and still decode.
const workFormat = 0x01

const (
	workGone = 1 << iota
	workRefresh
	workHasInFilter
	workInFilter
	workHasEntry
)

var errWorkTruncated = errors.New("truncated work item")

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// encodeWork returns w in the binary form.
func encodeWork(w work) []byte {
	size := 32 + len(w.Kind) + len(w.DN) + len(w.Hash) + len(w.Mapping) + len(w.Reason)
	for k, vs := range w.Entry {
		size += 2 + len(k)
		for _, v := range vs {
			size += 2 + len(v)
		}
	}
	b := make([]byte, 0, size)
	b = append(b, workFormat)
	b = appendString(b, string(w.Kind))
	b = appendString(b, w.DN)
	b = appendString(b, w.Hash)
	b = appendString(b, w.Mapping)
	b = appendString(b, w.Reason)
	var flags byte
	if w.Gone {
		flags |= workGone
	}
	if w.Refresh {
		flags |= workRefresh
	}
	if w.InFilter != nil {
		flags |= workHasInFilter
		if *w.InFilter {
			flags |= workInFilter
		}
	}
	if len(w.Entry) > 0 { // as JSON's omitempty: an empty entry reads as none
		flags |= workHasEntry
	}
	b = append(b, flags)
	var ns int64
	if !w.Changed.IsZero() {
		ns = w.Changed.UnixNano()
	}
	b = binary.AppendVarint(b, ns)
	if flags&workHasEntry != 0 {
		names := make([]string, 0, len(w.Entry))
		for k := range w.Entry {
			names = append(names, k)
		}
		slices.Sort(names)
		b = binary.AppendUvarint(b, uint64(len(names)))
		for _, k := range names {
			b = appendString(b, k)
			b = binary.AppendUvarint(b, uint64(len(w.Entry[k])))
			for _, v := range w.Entry[k] {
				b = appendString(b, v)
			}
		}
	}
	return b
}

// workReader reads the binary form; the first error sticks.
type workReader struct {
	b   []byte
	err error
}

func (r *workReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	u, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errWorkTruncated
		return 0
	}
	r.b = r.b[n:]
	return u
}

func (r *workReader) str() string {
	n := r.uvarint()
	if r.err != nil {
		return ""
	}
	if n > uint64(len(r.b)) {
		r.err = errWorkTruncated
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

// count reads a count of items that take at least one byte each.
func (r *workReader) count() int {
	n := r.uvarint()
	if r.err == nil && n > uint64(len(r.b)) {
		r.err = errWorkTruncated
	}
	if r.err != nil {
		return 0
	}
	return int(n)
}

func decodeWorkBytes(raw []byte) (work, error) {
	if len(raw) > 0 && raw[0] == '{' {
		var w work
		err := json.Unmarshal(raw, &w)
		return w, err
	}
	if len(raw) == 0 || raw[0] != workFormat {
		return work{}, fmt.Errorf("unknown work item format")
	}
	r := &workReader{b: raw[1:]}
	w := work{Kind: mapping.Kind(r.str()), DN: r.str(), Hash: r.str(), Mapping: r.str(), Reason: r.str()}
	var flags byte
	if r.err == nil {
		if len(r.b) == 0 {
			r.err = errWorkTruncated
		} else {
			flags, r.b = r.b[0], r.b[1:]
		}
	}
	w.Gone, w.Refresh = flags&workGone != 0, flags&workRefresh != 0
	if flags&workHasInFilter != 0 {
		in := flags&workInFilter != 0
		w.InFilter = &in
	}
	if r.err == nil {
		ns, n := binary.Varint(r.b)
		if n <= 0 {
			r.err = errWorkTruncated
		} else {
			r.b = r.b[n:]
			if ns != 0 {
				w.Changed = time.Unix(0, ns).UTC()
			}
		}
	}
	if flags&workHasEntry != 0 && r.err == nil {
		n := r.count()
		w.Entry = make(map[string][]string, n)
		for range n {
			k := r.str()
			vals := make([]string, r.count())
			for i := range vals {
				vals[i] = r.str()
			}
			w.Entry[k] = vals
		}
	}
	if r.err == nil && len(r.b) > 0 {
		r.err = fmt.Errorf("%d bytes after the work item", len(r.b))
	}
	if r.err != nil {
		return work{}, r.err
	}
	return w, nil
}

// jsonPayload returns a work item's payload as JSON, for a dead letter (the state file keeps
// dead letters as JSON); a payload that does not decode is kept as a JSON string of its bytes
// so the dead letter still records it.
func jsonPayload(raw []byte) json.RawMessage {
	if len(raw) > 0 && raw[0] == '{' {
		return raw
	}
	w, err := decodeWorkBytes(raw)
	if err != nil {
		out, _ := json.Marshal(string(raw))
		return out
	}
	out, err := json.Marshal(w)
	if err != nil {
		out, _ = json.Marshal(string(raw))
	}
	return out
}
