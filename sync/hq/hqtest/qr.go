package hqtest

import (
	"bytes"
	"fmt"
	"image"
	_ "image/png" // screenshots and `hq store qr --out f.png`

	"github.com/makiuchi-d/gozxing"
	gzqr "github.com/makiuchi-d/gozxing/qrcode"
)

// DecodeQR reads the QR code in an image (PNG) with a real decoder, as a
// phone or a till's scanner would.
func DecodeQR(img []byte) (string, error) {
	m, _, err := image.Decode(bytes.NewReader(img))
	if err != nil {
		return "", fmt.Errorf("the QR image: %w", err)
	}
	bmp, err := gozxing.NewBinaryBitmapFromImage(m)
	if err != nil {
		return "", err
	}
	res, err := gzqr.NewQRCodeReader().Decode(bmp, nil)
	if err != nil {
		// gozxing's finder-pattern detector misses about 1 in 100 clean,
		// upright codes (measured on member codes drawn by the card page);
		// an image that is the code and its quiet zone alone is then read
		// module by module, which is what it is.
		res, err = gzqr.NewQRCodeReader().Decode(bmp, map[gozxing.DecodeHintType]any{gozxing.DecodeHintType_PURE_BARCODE: true})
	}
	if err != nil {
		return "", fmt.Errorf("decoding the QR code: %w", err)
	}
	return res.GetText(), nil
}
