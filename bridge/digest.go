package bridge

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"reflect"
	"slices"
	"strconv"

	"github.com/scimbridge/scimbridge/targets"
)

// configDigest is a digest of the canonical encoding of vs: what a configuration is, not
// where it sits in memory. Structs are encoded field by field in declaration order,
// unexported fields included (a target's resolved directory is part of what it does),
// pointers and interfaces by what they point to, maps with their keys sorted. Secrets are
// encoded as a digest of their value, so that a rotated literal secret counts as a change
// while the encoding never holds the secret itself. Two loads of the same file give the same
// digest.
func configDigest(vs ...any) string {
	h := sha256.New()
	for _, v := range vs {
		encodeCanonical(h, reflect.ValueOf(v), 0)
		h.Write([]byte{'\n'})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// maxDepth stops a cyclic value; configurations are shallow.
const maxDepth = 32

func encodeCanonical(h hash.Hash, v reflect.Value, depth int) {
	w := func(s string) { h.Write([]byte(s)) }
	if depth > maxDepth {
		w("…")
		return
	}
	if !v.IsValid() {
		w("nil")
		return
	}
	if v.Type() == reflect.TypeFor[targets.Secret]() {
		sum := sha256.Sum256([]byte(v.String()))
		w("secret:" + hex.EncodeToString(sum[:]))
		return
	}
	switch v.Kind() {
	case reflect.Bool:
		w(strconv.FormatBool(v.Bool()))
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		w(strconv.FormatInt(v.Int(), 10))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		w(strconv.FormatUint(v.Uint(), 10))
	case reflect.Float32, reflect.Float64:
		w(strconv.FormatFloat(v.Float(), 'g', -1, 64))
	case reflect.String:
		w(strconv.Quote(v.String()))
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			w("nil")
			return
		}
		if v.Kind() == reflect.Interface {
			w(v.Elem().Type().String() + ":")
		}
		encodeCanonical(h, v.Elem(), depth+1)
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && v.IsNil() {
			w("nil")
			return
		}
		w("[")
		for i := range v.Len() {
			encodeCanonical(h, v.Index(i), depth+1)
			w(",")
		}
		w("]")
	case reflect.Map:
		if v.IsNil() {
			w("nil")
			return
		}
		type kv struct{ k, v string }
		entries := make([]kv, 0, v.Len())
		it := v.MapRange()
		for it.Next() {
			kh, vh := sha256.New(), sha256.New()
			encodeCanonical(kh, it.Key(), depth+1)
			encodeCanonical(vh, it.Value(), depth+1)
			entries = append(entries, kv{string(kh.Sum(nil)), string(vh.Sum(nil))})
		}
		slices.SortFunc(entries, func(a, b kv) int {
			switch {
			case a.k < b.k:
				return -1
			case a.k > b.k:
				return 1
			}
			return 0
		})
		w("{")
		for _, e := range entries {
			w(e.k + ":" + e.v + ",")
		}
		w("}")
	case reflect.Struct:
		w(v.Type().String() + "{")
		for i := range v.NumField() {
			w(v.Type().Field(i).Name + ":")
			encodeCanonical(h, v.Field(i), depth+1)
			w(",")
		}
		w("}")
	default:
		// Functions and channels have no value worth comparing: their type stands for them.
		w(fmt.Sprintf("<%s>", v.Type()))
	}
}
