// Package logtarget is the dry-run target: it logs each operation as an audit event and changes nothing anywhere.
package logtarget
