// Package pin hashes and checks cashier PINs with argon2id (RFC 9106), each
// with its own random salt, encoded PHC-style:
//
//	$argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt b64>$<hash b64>
//
// HQ hashes a PIN once when it is set; tills only ever receive and check the
// encoded hash, never the PIN. A hash carries its own parameters, so hashes
// made with other parameters (older, or chosen on a faster machine) still
// check.
package pin

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Params are argon2id's cost parameters.
type Params struct {
	Memory  uint32 // KiB
	Time    uint32 // passes
	Threads uint8
}

// Default (OWASP's argon2id minimum) costs ~65 ms per check on a loaded
// two-core till (see docs/agent.md
// and TestCost): slow enough that the 10^4-10^6 PINs of a stolen
// ledger file take hours per cashier, fast enough for a sign-in.
var Default = Params{Memory: 19 * 1024, Time: 2, Threads: 1}

// Bounds a hash's parameters must keep to: a hash received from HQ must not
// make the till spend seconds or gigabytes on a check.
const (
	maxMemory = 256 * 1024
	maxTime   = 16
	minLen    = 4
	maxLen    = 12
	saltLen   = 16
	keyLen    = 32
)

// ErrMismatch is a PIN that does not match the hash.
var ErrMismatch = errors.New("pin: wrong PIN")

// CheckFormat refuses PINs a keypad cannot type or a guesser finds at once:
// 4 to 12 digits.
func CheckFormat(p string) error {
	if len(p) < minLen || len(p) > maxLen {
		return fmt.Errorf("a PIN is %d to %d digits", minLen, maxLen)
	}
	for _, c := range p {
		if c < '0' || c > '9' {
			return fmt.Errorf("a PIN is digits only (%d to %d)", minLen, maxLen)
		}
	}
	return nil
}

// Hash makes the encoded hash of p with Default parameters.
func Hash(p string) (string, error) { return HashWith(p, Default) }

// HashWith makes the encoded hash of p with the given parameters.
func HashWith(p string, pr Params) (string, error) {
	if err := CheckFormat(p); err != nil {
		return "", err
	}
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(p), salt, pr.Time, pr.Memory, pr.Threads, keyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, pr.Memory, pr.Time, pr.Threads,
		b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

type decoded struct {
	pr        Params
	salt, key []byte
}

func decode(h string) (decoded, error) {
	var d decoded
	parts := strings.Split(h, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return d, errors.New("pin: not an argon2id hash ($argon2id$v=19$m=..,t=..,p=..$salt$hash)")
	}
	var v int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return d, fmt.Errorf("pin: argon2 version %q, want v=%d", parts[2], argon2.Version)
	}
	var threads uint32
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &d.pr.Memory, &d.pr.Time, &threads); err != nil {
		return d, fmt.Errorf("pin: parameters %q: %v", parts[3], err)
	}
	if d.pr.Memory < 8 || d.pr.Memory > maxMemory || d.pr.Time < 1 || d.pr.Time > maxTime || threads < 1 || threads > 16 {
		return d, fmt.Errorf("pin: parameters %q out of bounds (m at most %d KiB, t at most %d, p 1-16)", parts[3], maxMemory, maxTime)
	}
	d.pr.Threads = uint8(threads)
	var err error
	b64 := base64.RawStdEncoding
	if d.salt, err = b64.DecodeString(parts[4]); err != nil || len(d.salt) < 8 {
		return d, errors.New("pin: bad salt")
	}
	if d.key, err = b64.DecodeString(parts[5]); err != nil || len(d.key) < 16 || len(d.key) > 64 {
		return d, errors.New("pin: bad hash")
	}
	return d, nil
}

// Valid checks that h is a hash Check can use.
func Valid(h string) error {
	_, err := decode(h)
	return err
}

// Check reports nil when p matches h, ErrMismatch when it does not, and
// another error when h is not a usable hash.
func Check(h, p string) error {
	d, err := decode(h)
	if err != nil {
		return err
	}
	key := argon2.IDKey([]byte(p), d.salt, d.pr.Time, d.pr.Memory, d.pr.Threads, uint32(len(d.key)))
	if subtle.ConstantTimeCompare(key, d.key) != 1 {
		return ErrMismatch
	}
	return nil
}
