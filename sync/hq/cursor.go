package hq

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
)

// EncodeCursor makes an opaque cursor from a store's position value.
func EncodeCursor(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("hq: cursor of %T cannot be encoded: %v", v, err)) // a programming error, never input
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// DecodeCursor reads a cursor made by EncodeCursor into v; "" leaves v as is
// (the start). A cursor that does not decode → ErrCursor.
func DecodeCursor(c string, v any) error {
	if c == "" {
		return nil
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return fmt.Errorf("%w (%v)", ErrCursor, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w (%v)", ErrCursor, err)
	}
	return nil
}
