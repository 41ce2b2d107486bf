// Package boltjs holds the bbolt idioms that the HQ store and the test
// outbox share: big-endian uint64 keys (they sort by number) and JSON
// values.
package boltjs

import (
	"encoding/binary"
	"encoding/json"

	bolt "go.etcd.io/bbolt"
)

// U64 is the 8-byte big-endian key of v.
func U64(v uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	return b[:]
}

// Uint64 reads a U64 key or value; nil (absent) reads as 0.
func Uint64(b []byte) uint64 {
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

// Last is the number of the last U64 key of b; 0 when b is nil or empty.
func Last(b *bolt.Bucket) uint64 {
	if b == nil {
		return 0
	}
	k, _ := b.Cursor().Last()
	return Uint64(k)
}

// Put stores v as JSON under k.
func Put(b *bolt.Bucket, k []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(k, raw)
}

// Each decodes every value of b in key order and hands it to fn.
func Each[T any](b *bolt.Bucket, fn func(k []byte, v T) error) error {
	return b.ForEach(func(k, raw []byte) error {
		var v T
		if err := json.Unmarshal(raw, &v); err != nil {
			return err
		}
		return fn(k, v)
	})
}

// All decodes every value of b in key order.
func All[T any](b *bolt.Bucket) ([]T, error) {
	var out []T
	err := Each(b, func(_ []byte, v T) error {
		out = append(out, v)
		return nil
	})
	return out, err
}
