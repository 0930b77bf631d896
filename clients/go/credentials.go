package nervebus

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"google.golang.org/grpc/credentials"
)

// TokenSource gives the bearer token of a call. Token runs before every call and every
// Receive stream, so a source can refresh a short-lived token (cache it inside, and renew it
// before it expires). An error fails the call.
type TokenSource interface {
	Token(ctx context.Context) (string, error)
}

// TokenSourceFunc adapts a function to [TokenSource].
type TokenSourceFunc func(ctx context.Context) (string, error)

// Token calls f.
func (f TokenSourceFunc) Token(ctx context.Context) (string, error) { return f(ctx) }

// StaticToken is a [TokenSource] that always gives token.
func StaticToken(token string) TokenSource {
	return TokenSourceFunc(func(context.Context) (string, error) { return token, nil })
}

// WithTLS makes the connection use TLS with cfg; nil trusts the system's roots. For mTLS set
// cfg.Certificates, or cfg.GetClientCertificate to present a renewed certificate on
// reconnects. [LoadTLSConfig] builds one from PEM files.
func WithTLS(cfg *tls.Config) Option {
	return func(o *clientOptions) {
		if cfg == nil {
			cfg = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		o.tlsConfig = cfg
	}
}

// WithToken sends "authorization: Bearer <token>" with every call. It needs TLS ([WithTLS] or
// [WithTransportCredentials]): in plaintext anyone on the path could read the token, so
// [NewClient] refuses.
func WithToken(token string) Option {
	return WithTokenSource(StaticToken(token))
}

// WithTokenSource is [WithToken] with a token asked of ts before every call.
func WithTokenSource(ts TokenSource) Option {
	return func(o *clientOptions) { o.tokens = ts }
}

// LoadTLSConfig reads PEM files into a TLS configuration: the CA bundle to trust (caFile; ""
// for the system's roots) and a client certificate and its key (both "" for none).
func LoadTLSConfig(caFile, certFile, keyFile string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("nervebus: CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("nervebus: CA file %s: no PEM certificate in it", caFile)
		}
		cfg.RootCAs = pool
	}
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New("nervebus: a client certificate needs both its certificate and key files")
	}
	if certFile != "" {
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("nervebus: client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

// bearerCredentials puts a TokenSource's token in every call's metadata.
type bearerCredentials struct{ source TokenSource }

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (b bearerCredentials) GetRequestMetadata(ctx context.Context, _ ...string) (map[string]string, error) {
	token, err := b.source.Token(ctx)
	if err != nil {
		return nil, fmt.Errorf("nervebus: token source: %w", err)
	}
	return map[string]string{"authorization": "Bearer " + token}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials: never in plaintext.
func (bearerCredentials) RequireTransportSecurity() bool { return true }

var _ credentials.PerRPCCredentials = bearerCredentials{}
