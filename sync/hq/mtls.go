package hq

import (
	"crypto/x509"
	"fmt"
	"net/http"
	"strings"
)

// CertURIScheme is the scheme of the URI SANs that name a client
// certificate's holder: posagent:store:<id> or posagent:admin:<id>.
const CertURIScheme = "posagent"

// CertIdentity is a (role, id) a client certificate speaks for.
type CertIdentity struct {
	Role string // RoleStore or RoleAdmin
	ID   string
}

func (c CertIdentity) String() string { return c.Role + " " + fmt.Sprintf("%q", c.ID) }

// CertIdentities lists whom a client certificate names. Its URI SANs
// posagent:store:<id> and posagent:admin:<id> decide when it has any (the
// CommonName is then ignored, so a store certificate can carry a host
// name as CN); otherwise a non-empty Subject CommonName names a store. An
// admin is only ever named by a URI SAN.
func CertIdentities(cert *x509.Certificate) []CertIdentity {
	var ids []CertIdentity
	for _, u := range cert.URIs {
		if !strings.EqualFold(u.Scheme, CertURIScheme) {
			continue
		}
		role, id, ok := strings.Cut(u.Opaque, ":")
		if !ok || id == "" || (role != RoleStore && role != RoleAdmin) {
			continue
		}
		ids = append(ids, CertIdentity{Role: role, ID: id})
	}
	if len(ids) == 0 && cert.Subject.CommonName != "" {
		ids = append(ids, CertIdentity{Role: RoleStore, ID: cert.Subject.CommonName})
	}
	return ids
}

// clientCert returns the verified leaf certificate of the request's TLS
// connection, nil without one. Only a chain the TLS layer verified against
// the client CA counts: an unverified certificate proves nothing.
func clientCert(r *http.Request) *x509.Certificate {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return nil
	}
	return r.TLS.VerifiedChains[0][0]
}

// checkClientCert binds a credential to the client certificate of the
// connection: with a verified certificate (HQ has a client CA), it must name
// the credential's role and id. The bootstrap admin token has no id of its
// own and goes with any admin certificate. Without a certificate the request
// passes unless Options.RequireClientCert says mutual TLS is mandatory.
// The error comes with the wire.Error code to answer.
func (s *Server) checkClientCert(r *http.Request, c Credential, bootstrap bool) (string, error) {
	cert := clientCert(r)
	if cert == nil {
		if !s.o.RequireClientCert {
			return "", nil
		}
		who, id := CertIdentity{c.Role, c.ID}.String(), c.ID
		if bootstrap {
			who, id = "an admin", "<name>"
		}
		return "client_cert_required", fmt.Errorf("HQ requires mutual TLS: connect over https with the client certificate of %s (%s)", who, certHint(c.Role, id))
	}
	ids := CertIdentities(cert)
	for _, id := range ids {
		if id.Role == c.Role && (id.ID == c.ID || bootstrap) {
			return "", nil
		}
	}
	named := "nobody (no posagent: URI SAN and an empty CommonName)"
	if len(ids) > 0 {
		parts := make([]string, len(ids))
		for i, id := range ids {
			parts[i] = id.String()
		}
		named = strings.Join(parts, ", ")
	}
	if bootstrap {
		return "client_cert_mismatch", fmt.Errorf("the client certificate names %s but the admin token needs an admin certificate (%s); use an admin certificate with this token", named, certHint(RoleAdmin, "<name>"))
	}
	return "client_cert_mismatch", fmt.Errorf("the client certificate names %s but the token is the credential of %s; present %s's certificate (%s) with this token, or the token issued to the certificate's holder",
		named, CertIdentity{c.Role, c.ID}, c.ID, certHint(c.Role, c.ID))
}

// certHint says how a certificate names role and id.
func certHint(role, id string) string {
	if role == RoleStore {
		return fmt.Sprintf("URI SAN %s:%s:%s, or Subject CN=%s without posagent: URI SANs", CertURIScheme, RoleStore, id, id)
	}
	return fmt.Sprintf("URI SAN %s:%s:%s", CertURIScheme, RoleAdmin, id)
}
