package ldapstore

import (
	"errors"
	"fmt"

	"github.com/go-ldap/ldap/v3"
)

// Sentinel errors callers branch on with errors.Is. They never carry the server's diagnostic
// text to the caller's users: Error() of the wrapping *Error does, for logs only.
var (
	// ErrUnavailable means no directory server could be reached (dial, bind transport or a
	// dropped connection); the operation may be retried later.
	ErrUnavailable = errors.New("directory unavailable")
	// ErrNotFound is LDAP result 32 (noSuchObject).
	ErrNotFound = errors.New("no such entry")
	// ErrAlreadyExists is LDAP result 68 (entryAlreadyExists).
	ErrAlreadyExists = errors.New("entry already exists")
	// ErrAssertionFailed is LDAP result 122: the entry changed since it was read.
	ErrAssertionFailed = errors.New("assertion failed")
	// ErrInvalid covers schema and syntax violations: the request can never succeed as sent.
	ErrInvalid = errors.New("rejected by the directory schema")
	// ErrNoSuchAttribute is LDAP result 16 (deleting an absent value).
	ErrNoSuchAttribute = errors.New("no such attribute or value")
	// ErrValueExists is LDAP result 20 (adding a value already present).
	ErrValueExists = errors.New("attribute or value exists")
	// ErrDenied is an access-control or authentication refusal (48, 49, 50).
	ErrDenied = errors.New("access denied")
	// ErrSizeLimit is LDAP result 4: the server returned a partial result.
	ErrSizeLimit = errors.New("size limit exceeded")
	// ErrUnsupported means the server lacks a control or operation the call needs.
	ErrUnsupported = errors.New("not supported by the directory")
)

// Error is a failed directory operation. Its Error() includes the DN and the server's
// diagnostic: fine for logs, never for a SCIM client.
type Error struct {
	Op   string
	DN   string
	Code int
	Err  error
	kind error
}

func (e *Error) Error() string {
	if e.DN != "" {
		return fmt.Sprintf("ldapstore: %s %q: %v", e.Op, e.DN, e.Err)
	}
	return fmt.Sprintf("ldapstore: %s: %v", e.Op, e.Err)
}

// Unwrap returns both the classification and the underlying error.
func (e *Error) Unwrap() []error {
	if e.kind != nil {
		return []error{e.kind, e.Err}
	}
	return []error{e.Err}
}

// classify maps an LDAP result code to one of the sentinels (nil when none fits).
func classify(err error) (int, error) {
	var le *ldap.Error
	if !errors.As(err, &le) {
		return 0, nil
	}
	switch le.ResultCode {
	case ldap.ErrorNetwork, ldap.LDAPResultServerDown, ldap.LDAPResultUnavailable, ldap.LDAPResultBusy,
		ldap.LDAPResultConnectError, ldap.LDAPResultTimeout, ldap.LDAPResultTimeLimitExceeded, ldap.ErrorUnexpectedResponse:
		return int(le.ResultCode), ErrUnavailable
	case ldap.LDAPResultNoSuchObject:
		return int(le.ResultCode), ErrNotFound
	case ldap.LDAPResultEntryAlreadyExists:
		return int(le.ResultCode), ErrAlreadyExists
	case 122: // assertionFailed, RFC 4528
		return int(le.ResultCode), ErrAssertionFailed
	case ldap.LDAPResultNoSuchAttribute:
		return int(le.ResultCode), ErrNoSuchAttribute
	case ldap.LDAPResultAttributeOrValueExists:
		return int(le.ResultCode), ErrValueExists
	case ldap.LDAPResultUndefinedAttributeType, ldap.LDAPResultInappropriateMatching,
		ldap.LDAPResultConstraintViolation, ldap.LDAPResultInvalidAttributeSyntax,
		ldap.LDAPResultNamingViolation, ldap.LDAPResultObjectClassViolation,
		ldap.LDAPResultNotAllowedOnNonLeaf, ldap.LDAPResultNotAllowedOnRDN,
		ldap.LDAPResultObjectClassModsProhibited, ldap.LDAPResultInvalidDNSyntax,
		ldap.LDAPResultUnwillingToPerform, ldap.LDAPResultProtocolError:
		return int(le.ResultCode), ErrInvalid
	case ldap.LDAPResultInsufficientAccessRights, ldap.LDAPResultInvalidCredentials,
		ldap.LDAPResultInappropriateAuthentication, ldap.LDAPResultStrongAuthRequired,
		ldap.LDAPResultConfidentialityRequired:
		return int(le.ResultCode), ErrDenied
	case ldap.LDAPResultSizeLimitExceeded:
		return int(le.ResultCode), ErrSizeLimit
	case ldap.LDAPResultUnavailableCriticalExtension:
		return int(le.ResultCode), ErrUnsupported
	}
	return int(le.ResultCode), nil
}

func wrap(op, dn string, err error) error {
	if err == nil {
		return nil
	}
	var already *Error
	if errors.As(err, &already) {
		return err
	}
	code, kind := classify(err)
	return &Error{Op: op, DN: dn, Code: code, Err: err, kind: kind}
}

// isNetwork reports whether err means the connection is unusable.
func isNetwork(err error) bool {
	return errors.Is(err, ErrUnavailable) || ldap.IsErrorWithCode(err, ldap.ErrorNetwork)
}
