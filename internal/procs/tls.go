package procs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// serverTLS is what writeServerTLS leaves in a server's directory.
type serverTLS struct {
	caFile, certFile, keyFile string
	roots                     *x509.CertPool
}

// writeServerTLS generates, in dir, a CA and a certificate for 127.0.0.1
// signed by it. Everything is made in-process, so tests need no openssl
// binary, and every server has its own CA: a client trusting one server
// never trusts another by accident.
func writeServerTLS(dir string) (*serverTLS, error) {
	ca, caKey, err := newCA("procs CA")
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("procs: server key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour), // room for clock skew
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("procs: server certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("procs: server key: %w", err)
	}
	t := &serverTLS{
		caFile:   filepath.Join(dir, "tls-ca.pem"),
		certFile: filepath.Join(dir, "tls-server.pem"),
		keyFile:  filepath.Join(dir, "tls-server.key"),
		roots:    x509.NewCertPool(),
	}
	t.roots.AddCert(ca)
	if err := writePEM(t.caFile, "CERTIFICATE", ca.Raw, 0o644); err != nil {
		return nil, err
	}
	if err := writePEM(t.certFile, "CERTIFICATE", der, 0o644); err != nil {
		return nil, err
	}
	if err := writePEM(t.keyFile, "PRIVATE KEY", keyDER, 0o600); err != nil {
		return nil, err
	}
	return t, nil
}

// WriteCA writes, in dir, the PEM certificate of a new CA that has signed
// nothing, and returns its path. A client trusting only it fails to verify
// any server: tests use it for certificate errors. Each call writes a new
// file, so it never overwrites a server's own CA. It returns the error of
// generating or writing the certificate.
func WriteCA(dir string) (caFile string, err error) {
	ca, _, err := newCA("procs unrelated CA")
	if err != nil {
		return "", err
	}
	f, err := os.CreateTemp(dir, "unrelated-ca-*.pem")
	if err != nil {
		return "", fmt.Errorf("procs: %w", err)
	}
	defer f.Close()
	if err := pem.Encode(f, &pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw}); err != nil {
		return "", fmt.Errorf("procs: write %s: %w", f.Name(), err)
	}
	return f.Name(), f.Close()
}

// newCA returns a self-signed CA certificate and its key.
func newCA(name string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("procs: CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("procs: CA certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("procs: CA certificate: %w", err)
	}
	return ca, key, nil
}

func writePEM(path, typ string, der []byte, perm os.FileMode) error {
	b := pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
	if err := os.WriteFile(path, b, perm); err != nil {
		return fmt.Errorf("procs: %w", err)
	}
	return nil
}
