package outbound

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/scimbridge/scimbridge/bridge/state"
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
// uvarint count of values — written and read with bridge/state's Encoder and Decoder. Items
// written as JSON (before schema version 2, and every dead letter's, which the state file
// keeps as JSON) start with '{' and still decode.
const workFormat = 0x01

const (
	workGone = 1 << iota
	workRefresh
	workHasInFilter
	workInFilter
	workHasEntry
)

// encodeWork returns w in the binary form.
func encodeWork(w work) []byte {
	size := 32 + len(w.Kind) + len(w.DN) + len(w.Hash) + len(w.Mapping) + len(w.Reason)
	for k, vs := range w.Entry {
		size += 2 + len(k)
		for _, v := range vs {
			size += 2 + len(v)
		}
	}
	enc := state.Encoder{B: make([]byte, 0, size)}
	enc.B = append(enc.B, workFormat)
	enc.String(string(w.Kind))
	enc.String(w.DN)
	enc.String(w.Hash)
	enc.String(w.Mapping)
	enc.String(w.Reason)
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
	enc.B = append(enc.B, flags)
	enc.Time(w.Changed)
	if flags&workHasEntry != 0 {
		names := make([]string, 0, len(w.Entry))
		for k := range w.Entry {
			names = append(names, k)
		}
		slices.Sort(names)
		enc.Uvarint(uint64(len(names)))
		for _, k := range names {
			enc.String(k)
			enc.Uvarint(uint64(len(w.Entry[k])))
			for _, v := range w.Entry[k] {
				enc.String(v)
			}
		}
	}
	return enc.B
}

func decodeWorkBytes(raw []byte) (work, error) {
	if len(raw) > 0 && raw[0] == '{' {
		var w work
		err := json.Unmarshal(raw, &w)
		return w, err
	}
	if len(raw) == 0 || raw[0] != workFormat {
		return work{}, errors.New("unknown work item format")
	}
	d := state.NewDecoder(raw[1:])
	w := work{Kind: mapping.Kind(d.String()), DN: d.String(), Hash: d.String(), Mapping: d.String(), Reason: d.String()}
	flags := d.Byte()
	w.Gone, w.Refresh = flags&workGone != 0, flags&workRefresh != 0
	if flags&workHasInFilter != 0 {
		in := flags&workInFilter != 0
		w.InFilter = &in
	}
	w.Changed = d.Time()
	if flags&workHasEntry != 0 {
		n := d.Count()
		w.Entry = make(map[string][]string, n)
		for range n {
			k := d.String()
			vals := make([]string, d.Count())
			for i := range vals {
				vals[i] = d.String()
			}
			w.Entry[k] = vals
		}
	}
	if err := d.Done(); err != nil {
		return work{}, fmt.Errorf("work item: %w", err)
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
