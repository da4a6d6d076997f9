package inbound

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	scimerrors "github.com/elimity-com/scim/errors"

	"github.com/scimbridge/scimbridge/ldapstore"
	"github.com/scimbridge/scimbridge/mapping"
)

// apiError is an answer for the SCIM client: status, scimType and a detail written by us. It
// never carries directory diagnostics or DNs; cause, when set, is the underlying error for the
// log only.
type apiError struct {
	status   int
	scimType string
	detail   string
	cause    error
	// retryAfter is the Retry-After header in seconds (503).
	retryAfter int
}

func (e *apiError) Error() string {
	s := strconv.Itoa(e.status) + " " + e.scimType + ": " + e.detail
	if e.cause != nil {
		s += ": " + e.cause.Error()
	}
	return s
}

func (e *apiError) Unwrap() error { return e.cause }

func badRequest(scimType, detail string) *apiError {
	return &apiError{status: http.StatusBadRequest, scimType: scimType, detail: detail}
}

func notFound(what string) *apiError {
	return &apiError{status: http.StatusNotFound, detail: what + " not found"}
}

var (
	errStale = &apiError{status: http.StatusPreconditionFailed, detail: "the resource changed since the version in If-Match"}
	// errRetryAfterSeconds is what a client is asked to wait when the directory is down.
	errRetryAfterSeconds = 5
)

// classify turns any error of a handler into the answer for the client. Directory errors are
// mapped by kind; whatever is not recognised is a 500 whose body says nothing about the cause.
func classify(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	var me *mapping.Error
	if errors.As(err, &me) {
		status := me.Status
		if status == 0 {
			status = http.StatusBadRequest
		}
		return &apiError{status: status, scimType: me.ScimType, detail: me.Detail, cause: err}
	}
	switch {
	case errors.Is(err, ldapstore.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return &apiError{status: http.StatusServiceUnavailable, detail: "the directory is unavailable; retry later", cause: err, retryAfter: errRetryAfterSeconds}
	case errors.Is(err, context.Canceled):
		// The client went away; nobody reads this.
		return &apiError{status: 499, detail: "request cancelled", cause: err}
	case errors.Is(err, ldapstore.ErrNotFound):
		return &apiError{status: http.StatusNotFound, detail: "resource not found", cause: err}
	case errors.Is(err, ldapstore.ErrAlreadyExists):
		return &apiError{status: http.StatusConflict, scimType: mapping.ScimTypeUniqueness, detail: "a resource with this name already exists", cause: err}
	case errors.Is(err, ldapstore.ErrAssertionFailed):
		return &apiError{status: http.StatusPreconditionFailed, detail: errStale.detail, cause: err}
	case errors.Is(err, ldapstore.ErrInvalid):
		return &apiError{status: http.StatusBadRequest, scimType: mapping.ScimTypeInvalidValue, detail: "the directory refused the values (schema, syntax or policy)", cause: err}
	case errors.Is(err, ldapstore.ErrUnsupported):
		// The directory cannot do this over the bridge's connection (a password without TLS
		// to 389-DS or AD): the administrator must change the configuration.
		return &apiError{status: http.StatusNotImplemented, detail: "the directory does not support this operation over the bridge's connection; see the server log", cause: err}
	case errors.Is(err, ldapstore.ErrSizeLimit):
		return &apiError{status: http.StatusBadRequest, scimType: mapping.ScimTypeTooMany, detail: "the query matches more entries than the directory returns", cause: err}
	}
	return &apiError{status: http.StatusInternalServerError, detail: "internal error; see the server log", cause: err}
}

// writeError writes a SCIM error body (RFC 7644 §3.12).
func writeError(w http.ResponseWriter, e *apiError) {
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Del("ETag")
	h.Del("Location")
	if e.retryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(e.retryAfter))
	}
	status := e.status
	if status == 499 {
		status = http.StatusBadRequest
	}
	body, _ := json.Marshal(scimerrors.ScimError{ScimType: scimerrors.ScimType(e.scimType), Detail: e.detail, Status: status})
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
