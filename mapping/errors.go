package mapping

import (
	"fmt"
	"strings"
)

// The scimType values of RFC 7644 §3.12 that mapping reports.
const (
	ScimTypeInvalidSyntax = "invalidSyntax"
	ScimTypeInvalidFilter = "invalidFilter"
	ScimTypeInvalidValue  = "invalidValue"
	ScimTypeInvalidPath   = "invalidPath"
	ScimTypeNoTarget      = "noTarget"
	ScimTypeMutability    = "mutability"
	ScimTypeUniqueness    = "uniqueness"
	ScimTypeTooMany       = "tooMany"
)

// Error is a request problem that the inbound server returns to the SCIM client as a SCIM error
// body. Detail only ever names SCIM attributes, operations and expected types: it never carries
// LDAP diagnostics, DNs or the offending values (a value may be a password), so it is safe to
// show to the client as it is.
type Error struct {
	// ScimType is one of the ScimType constants.
	ScimType string
	// Detail is a human-readable explanation for the client.
	Detail string
	// Status is the HTTP status: 409 for uniqueness, 400 for everything else mapping reports.
	Status int
}

// Error implements error.
func (e *Error) Error() string {
	return "scim " + e.ScimType + ": " + e.Detail
}

// HTTP statuses of SCIM errors, spelled out to keep net/http out of this leaf package.
const (
	statusBadRequest = 400
	statusConflict   = 409
)

// NewError returns an *Error of the scimType with its status: 409 for uniqueness, 400 for the
// others. The inbound server uses it for the problems only the directory reveals (an entry
// that already exists is uniqueness); the detail must be as safe for the client as mapping's.
func NewError(scimType, format string, args ...any) *Error {
	return errorf(scimType, format, args...)
}

func errorf(scimType, format string, args ...any) *Error {
	status := statusBadRequest
	if scimType == ScimTypeUniqueness {
		status = statusConflict
	}
	return &Error{ScimType: scimType, Detail: fmt.Sprintf(format, args...), Status: status}
}

// problems collects every problem of one request so that the client learns about all of them at
// once; the first problem decides the scimType.
type problems struct {
	scimType string
	details  []string
}

func (p *problems) add(scimType, format string, args ...any) {
	if p.scimType == "" {
		p.scimType = scimType
	}
	p.details = append(p.details, fmt.Sprintf(format, args...))
}

func (p *problems) addErr(e *Error) {
	if e != nil {
		p.add(e.ScimType, "%s", e.Detail)
	}
}

// merge appends the problems of q.
func (p *problems) merge(q *problems) {
	if q == nil || len(q.details) == 0 {
		return
	}
	if p.scimType == "" {
		p.scimType = q.scimType
	}
	p.details = append(p.details, q.details...)
}

// err returns the collected problems as one *Error, or nil when there are none.
func (p *problems) err() error {
	if len(p.details) == 0 {
		return nil
	}
	return errorf(p.scimType, "%s", strings.Join(p.details, "; "))
}
