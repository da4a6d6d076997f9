package targets

// Secret is a string that never shows itself: it prints, marshals and logs as "<secret>"
// through fmt (%v, %s, %q, %#v), encoding/json, encoding.TextMarshaler users (TOML encoders)
// and zerolog's Interface/Any/Stringer fields. Use Reveal (or a string conversion) only
// where the value is sent to the peer that must see it.
//
// fmt cannot call methods on unexported struct fields, so keep Secret fields exported in
// structs that may be printed.
type Secret string

const redacted = "<secret>"

// String returns "<secret>".
func (Secret) String() string { return redacted }

// GoString returns "<secret>", for %#v.
func (Secret) GoString() string { return redacted }

// MarshalText returns "<secret>".
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// MarshalJSON returns "<secret>" as a JSON string.
func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// UnmarshalText sets the secret from text (a TOML or JSON string).
func (s *Secret) UnmarshalText(text []byte) error {
	*s = Secret(text)
	return nil
}

// Reveal returns the secret value itself.
func (s Secret) Reveal() string { return string(s) }
