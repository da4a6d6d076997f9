// Package targettest provides test helpers for targets: a recording fake Target and a strict in-memory SCIM 2.0 server with fault injection.
package targettest
