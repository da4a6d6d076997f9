package doctor

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/url"
	"strings"
	"time"
)

// certWarnBefore is how long before expiry a certificate is reported.
const certWarnBefore = 30 * 24 * time.Hour

// checkInboundTLS checks the SCIM server's certificate: it loads with its key, is valid now,
// chains to a CA the system trusts (Entra ID requires a public one), names the host Entra ID
// calls and does not expire within 30 days. Without TLS files it checks that plain HTTP stays
// on loopback, behind a reverse proxy.
func checkInboundTLS(_ context.Context, r *run) []Result {
	return inboundTLS(r, r.cfg.Inbound.PublicURL)
}

// inboundTLS is checkInboundTLS for the public URL Entra ID calls (inbound.public_url; ""
// when not configured: the certificate's names are then only listed).
func inboundTLS(r *run, publicURL string) []Result {
	const name = "inbound.tls"
	in := r.cfg.Inbound
	if !in.Enabled {
		return []Result{pass(name, "the inbound SCIM server is off")}
	}
	if in.TLSCertFile == "" {
		host, _, err := net.SplitHostPort(in.Listen)
		if err == nil && isLoopback(host) {
			return []Result{pass(name, "plain HTTP on %s: terminate TLS in a reverse proxy in front of it", in.Listen)}
		}
		return []Result{warn(name, "set inbound.tls_cert_file and inbound.tls_key_file, or listen on loopback behind a TLS reverse proxy",
			"plain HTTP on %s, reachable from other hosts: Entra ID requires HTTPS, and the bearer token would travel in clear", in.Listen)}
	}
	pair, err := tls.LoadX509KeyPair(in.TLSCertFile, in.TLSKeyFile)
	if err != nil {
		return []Result{fail(name, "point inbound.tls_cert_file and inbound.tls_key_file at a PEM certificate (leaf first, then intermediates) and its key", "%v", err)}
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return []Result{fail(name, "use a valid PEM certificate", "parsing %s: %v", in.TLSCertFile, err)}
	}
	now := r.now()
	renew := "renew the certificate; `systemctl reload scimbridge` (SIGHUP) loads the new files without a restart"
	switch {
	case now.After(leaf.NotAfter):
		return []Result{fail(name, renew, "the certificate expired on %s", leaf.NotAfter.Format(time.DateOnly))}
	case now.Before(leaf.NotBefore):
		return []Result{fail(name, "check the clock, or use a certificate valid now", "the certificate is valid only from %s", leaf.NotBefore.Format(time.RFC3339))}
	}
	names := leaf.DNSNames
	for _, ip := range leaf.IPAddresses {
		names = append(names, ip.String())
	}
	var out []Result
	if publicURL != "" {
		if u, err := url.Parse(publicURL); err == nil {
			if err := leaf.VerifyHostname(u.Hostname()); err != nil {
				out = append(out, fail(name+".name", "use a certificate for "+u.Hostname()+", or correct inbound.public_url",
					"the certificate names %s, not %q (inbound.public_url)", strings.Join(names, ", "), u.Hostname()))
			}
		}
	}
	inter := x509.NewCertPool()
	for _, der := range pair.Certificate[1:] {
		if c, err := x509.ParseCertificate(der); err == nil {
			inter.AddCert(c)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Intermediates: inter, CurrentTime: now}); err != nil {
		out = append(out, warn(name+".chain", "use a certificate from a public CA, with its intermediates after it in tls_cert_file",
			"the certificate does not chain to a CA this system trusts (%v): Entra ID accepts only publicly trusted certificates", err))
	}
	if left := leaf.NotAfter.Sub(now); left < certWarnBefore {
		out = append(out, warn(name, renew, "the certificate expires on %s, in %d days", leaf.NotAfter.Format(time.DateOnly), int(left.Hours()/24)))
	} else {
		out = append(out, pass(name, "certificate for %s valid until %s", strings.Join(names, ", "), leaf.NotAfter.Format(time.DateOnly)))
	}
	return out
}

// checkAdmin warns when /metrics and /status are reachable from other hosts.
func checkAdmin(_ context.Context, r *run) []Result {
	const name = "admin.listen"
	l := r.cfg.Admin.Listen
	if l == "" {
		return []Result{pass(name, "the admin listener is off")}
	}
	host, _, err := net.SplitHostPort(l)
	if err == nil && isLoopback(host) {
		return []Result{pass(name, "/metrics, /status and the health checks on loopback (%s)", l)}
	}
	return []Result{warn(name, "listen on 127.0.0.1 (the default), or firewall the port to the monitoring hosts",
		"%s is reachable from other hosts: /status and /metrics describe the provisioners and the directory", l)}
}
