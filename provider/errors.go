package provider

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"

	"github.com/hashicorp/terraform-plugin-framework/diag"

	"github.com/coexist-dev/coexist/api"
)

// Kinds of failure talking to the registry, each with its own advice.
const (
	failUnreachable = "unreachable"
	failTLS         = "tls"
	failToken       = "token"
	failForbidden   = "forbidden"
	failNoLeader    = "no-leader"
	failRefused     = "refused"
	failOther       = "other"
)

// classify says what kind of failure err is.
func classify(err error) string {
	var se *api.StatusError
	if errors.As(err, &se) {
		switch se.Code {
		case http.StatusUnauthorized:
			return failToken
		case http.StatusForbidden:
			return failForbidden
		case http.StatusServiceUnavailable:
			return failNoLeader
		case http.StatusBadRequest, http.StatusConflict, http.StatusNotFound:
			return failRefused
		}
		return failOther
	}
	var uae x509.UnknownAuthorityError
	var cve *tls.CertificateVerificationError
	var hne x509.HostnameError
	var rhe tls.RecordHeaderError
	if errors.As(err, &uae) || errors.As(err, &cve) || errors.As(err, &hne) || errors.As(err, &rhe) {
		return failTLS
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return failOther
	}
	if api.IsRetryable(err) {
		return failUnreachable
	}
	return failOther
}

// addAPIError adds a diagnostic for err, an answer (or no answer) of the
// registry, that says what went wrong and how to fix it.
func addAPIError(diags *diag.Diagnostics, c *Client, summary string, err error) {
	diags.AddError(summary, explain(c, err))
}

// configureSummary is the summary of a failed check of the registry when the
// provider is configured: it says which of address, TLS or token is wrong.
func configureSummary(err error) string {
	switch classify(err) {
	case failUnreachable:
		return "Cannot reach the coexist registry"
	case failTLS:
		return "TLS handshake with the coexist registry failed"
	case failToken:
		return "The coexist registry refused the token"
	case failForbidden:
		return "The coexist token may not read the registry"
	case failNoLeader:
		return "The coexist registry has no leader"
	}
	return "Cannot use the coexist registry"
}

// explain turns a registry error into advice for the operator.
func explain(c *Client, err error) string {
	addr := c.Address
	switch classify(err) {
	case failUnreachable:
		return fmt.Sprintf("Cannot reach the coexist registry at %s: %v.\n\n"+
			"Check the provider's address (or COEXIST_ADDR) and that the registry is running "+
			"(`coexist server`, or `coexist agent --dev` on one machine).", addr, err)
	case failTLS:
		return fmt.Sprintf("The TLS handshake with the coexist registry at %s failed: %v.\n\n"+
			"Check the provider's ca_file (or COEXIST_CACERT): it must hold the CA that signed the registry's "+
			"certificate; check cert_file and key_file when the registry asks for a client certificate.", addr, err)
	case failToken:
		return fmt.Sprintf("The coexist registry at %s refused the token: %s.\n\n"+
			"Set the provider's token (or COEXIST_TOKEN) to a valid ACL token: create one with "+
			"POST /v1/acl/tokens, or use the management token of the registry "+
			"(`coexist agent --dev` prints it, or takes it from COEXIST_MANAGEMENT_TOKEN).", addr, body(err))
	case failForbidden:
		return fmt.Sprintf("The coexist registry at %s does not allow this token to do that: %s.\n\n"+
			"Resources need a token of the operator or management role; data sources accept any role. "+
			"Set the provider's token (or COEXIST_TOKEN) to such a token.", addr, body(err))
	case failNoLeader:
		return fmt.Sprintf("The coexist registry at %s has no leader: %s.\n\n"+
			"A quorum of registry servers must be up; check them with `coexist status` and try again.", addr, body(err))
	case failRefused:
		return fmt.Sprintf("The coexist registry at %s refused it: %s", addr, body(err))
	}
	return fmt.Sprintf("coexist registry at %s: %v", addr, err)
}

// body is the registry's own message inside err, or err's text.
func body(err error) string {
	var se *api.StatusError
	if errors.As(err, &se) && se.Body != "" {
		return se.Body
	}
	return err.Error()
}

// isNoLeader reports whether err is the registry's 503: no leader known yet.
func isNoLeader(err error) bool { return classify(err) == failNoLeader }
