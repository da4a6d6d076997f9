package mapping

import (
	"errors"
	"fmt"
	"strings"
)

// PermanentLock is the pwdAccountLockedTime value with which the OpenLDAP ppolicy overlay locks
// an account until an administrator unlocks it (draft-behera-ldap-password-policy).
const PermanentLock = "000001010000Z"

// ActiveMarker is how SCIM's active attribute is stored in the directory, which has no
// standard "disabled" flag for inetOrgPerson.
//
// active=false adds Value to the multi-valued attribute Attr, keeping its other values, and,
// when LockAttr is set, sets LockAttr to PermanentLock. active=true removes Value and that
// permanent lock. A user is read as active unless Attr holds Value (compared
// case-insensitively) or LockAttr holds PermanentLock.
//
// What a disabled user can still do depends on the option:
//
//   - marker only (the stock default, Attr "employeeType"): the marker is just data. The user
//     can still bind and use every LDAP-backed service that does not itself filter on the
//     marker, e.g. with (!(employeeType=scimbridge:disabled)) in its user filter. The bridge's
//     outbound side treats the user as disabled.
//   - LockAttr "pwdAccountLockedTime" (only when the ppolicy overlay is loaded, detected from
//     the subschema): slapd refuses the user's binds as well. ppolicy's own temporary lockouts
//     (a real time in pwdAccountLockedTime) are neither read as disabled nor cleared by
//     active=true: re-enabling through SCIM cannot be used to lift a brute-force lockout.
//
// Two other forms serve directories with a flag of their own: Single (389-DS's nsAccountLock:
// active=false sets Attr to Value alone, active=true removes Value) and Flag (Active
// Directory's userAccountControl: bit Flag of the integer in Attr is set while the user is
// disabled, and no other bit is ever touched).
type ActiveMarker struct {
	// Attr is the attribute that carries Value (or bit Flag) while the user is disabled.
	Attr string
	// Value marks a disabled user.
	Value string
	// LockAttr, when set, is the password-policy lock attribute (pwdAccountLockedTime).
	LockAttr string
	// Single: Attr holds one value; a disabled user's is Value alone.
	Single bool
	// Flag, when not zero, makes Attr an integer bit field whose bit Flag marks a disabled
	// user (Value is unused).
	Flag uint32
}

// DefaultActiveMarker is the marker for a stock OpenLDAP: employeeType is a multi-valued
// directory string that inetOrgPerson allows and that nothing else in the bridge uses.
func DefaultActiveMarker() ActiveMarker {
	return ActiveMarker{Attr: "employeeType", Value: "scimbridge:disabled"}
}

// Validate checks a configured marker: Attr and Value go together, at least one way of storing
// active=false is configured, and the attributes are valid LDAP attribute names that the
// directory does not maintain itself. The error lists every problem.
func (mk ActiveMarker) Validate() error {
	var errs []error
	switch {
	case mk.Flag != 0 && (mk.Attr == "" || mk.Value != "" || mk.Single):
		errs = append(errs, errors.New("active marker: a flag needs an attribute and no value"))
	case mk.Flag == 0 && (mk.Attr == "") != (mk.Value == ""):
		errs = append(errs, errors.New("active marker: the attribute and the value go together"))
	case mk.Attr == "" && mk.LockAttr == "":
		errs = append(errs, errors.New("active marker: set an attribute and a value, or a lock attribute"))
	}
	if mk.Attr != "" {
		if err := checkLDAPName(mk.Attr); err != nil {
			errs = append(errs, fmt.Errorf("active marker: %w", err))
		}
	}
	if mk.Value != strings.TrimSpace(mk.Value) {
		errs = append(errs, fmt.Errorf("active marker: value %q has leading or trailing spaces", mk.Value))
	}
	if mk.LockAttr != "" && !ldapNameRE.MatchString(mk.LockAttr) {
		errs = append(errs, fmt.Errorf("active marker: %q is not a valid LDAP attribute name", mk.LockAttr))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("mapping: %w", err)
	}
	return nil
}

// String describes the marker for logs: "employeeType=scimbridge:disabled",
// "userAccountControl&2".
func (mk ActiveMarker) String() string {
	if mk.Flag != 0 {
		return fmt.Sprintf("%s&%d", mk.Attr, mk.Flag)
	}
	return mk.Attr + "=" + mk.Value
}

// isMarker reports whether v is the marker value.
func (mk ActiveMarker) isMarker(v string) bool {
	return mk.Flag == 0 && mk.Value != "" && strings.EqualFold(strings.TrimSpace(v), mk.Value)
}

// onAttr reports whether attr is the marker's attribute.
func (mk ActiveMarker) onAttr(attr string) bool {
	return mk.Attr != "" && strings.EqualFold(attr, mk.Attr)
}

// Active reports whether e is an active user.
func (mk ActiveMarker) Active(e Entry) bool {
	if mk.Attr != "" && mk.Flag != 0 && flagSet(e.First(mk.Attr), mk.Flag) {
		return false
	}
	if mk.Attr != "" {
		for _, v := range e.Get(mk.Attr) {
			if mk.isMarker(v) {
				return false
			}
		}
	}
	if mk.LockAttr != "" {
		for _, v := range e.Get(mk.LockAttr) {
			if v == PermanentLock {
				return false
			}
		}
	}
	return true
}

// withoutMarker returns vals without the marker value.
func (mk ActiveMarker) withoutMarker(vals []string) []string {
	out := vals[:0:0]
	for _, v := range vals {
		if !mk.isMarker(v) {
			out = append(out, v)
		}
	}
	return out
}

// markerValues returns the values of Attr for a user whose Attr now holds others.
func (mk ActiveMarker) markerValues(others []string, active bool) []string {
	if mk.Flag != 0 {
		cur := ""
		if len(others) > 0 {
			cur = others[0]
		}
		return []string{withFlag(cur, mk.Flag, !active)}
	}
	out := mk.withoutMarker(others)
	if !active && mk.Value != "" {
		if mk.Single {
			return []string{mk.Value}
		}
		out = append(out, mk.Value)
	}
	return out
}

// lockValues returns the values of LockAttr for a user whose LockAttr now holds current.
func (mk ActiveMarker) lockValues(current []string, active bool) []string {
	locked := len(current) > 0
	permanent := locked && current[0] == PermanentLock
	switch {
	case !active:
		return []string{PermanentLock}
	case permanent:
		return nil
	default:
		// A ppolicy lockout stays until it expires or an administrator lifts it.
		return current
	}
}
