package devices_test

import (
	"testing"

	"posagent/devices"
	"posagent/devices/hiddev"
	"posagent/devices/hiddev/hidtest"
	"posagent/devices/token"
)

func recording(t *testing.T, name string) [][]byte {
	t.Helper()
	return hidtest.MustLoad(t, "hiddev/testdata/"+name)
}

// TestHIDThroughManager feeds recorded reports through the backend
// interface the karalabe device implements, end to end to events.
func TestHIDThroughManager(t *testing.T) {
	scanner := hiddev.DeviceInfo{Path: "1-2:1.0", VID: 0x0c2e, PID: 0x0b61, Serial: "S1", UsagePage: hiddev.UsagePagePOS}
	swiper := hiddev.DeviceInfo{Path: "1-3:1.0", VID: 0x0801, PID: 0x0002}
	wedge := hiddev.DeviceInfo{Path: "1-4:1.0", VID: 0xffff, PID: 0x0035}
	keyboard := hiddev.DeviceInfo{Path: "1-5:1.0", VID: 0x046d, PID: 0xc31c}
	be := hidtest.NewBackend(scanner, swiper, wedge, keyboard)
	qr := recording(t, "pos_qr_continuation.hex")
	// The scanner is unplugged halfway through a label, then comes back.
	be.Queue(scanner.Path, hidtest.NewReplay(qr[:2], true))
	be.Queue(scanner.Path, hidtest.NewReplay(recording(t, "pos_ean13.hex"), false))
	be.Queue(swiper.Path, hidtest.NewReplay(append(recording(t, "magtek_track2_error.hex"), recording(t, "magtek_swipe.hex")...), false))
	be.Queue(wedge.Path, hidtest.NewReplay(recording(t, "keyboard_us_uid.hex"), false))

	m := run(t, []devices.Config{
		{Name: "scanner", Till: "T1", Transport: "hid", VID: "0c2e", PID: "0b61", Serial: "S1", HIDReport: "pos"},
		{Name: "swiper", Till: "T1", Transport: "hid", VID: "0801", PID: "0002", HIDReport: "msr"},
		{Name: "wedge", Till: "T2", Transport: "hid", Path: wedge.Path, HIDReport: "keyboard", Decoder: "uid:hex", Layout: "us"},
	}, devices.WithHIDBackend(be))

	byDev := map[string][]devices.Event{}
	for len(byDev["scanner"]) < 1 || len(byDev["swiper"]) < 2 || len(byDev["wedge"]) < 1 {
		e, _ := next(t, m, func(e devices.Event) bool { return e.Kind != devices.KindStatus })
		byDev[e.Device] = append(byDev[e.Device], e)
	}
	if e := byDev["scanner"][0]; e.Kind != devices.KindData || e.Data.Symbology != "EAN-13" || e.Data.TokenHash != token.Hash(testKey, "4006381333931") {
		t.Errorf("scanner: the cut-off QR label must be dropped and the EAN read after replug delivered; got %s", describe(byDev["scanner"]))
	}
	sw := byDev["swiper"]
	if sw[0].Kind != devices.KindError || sw[0].Error.Hint == "" {
		t.Errorf("swiper: track-2 error should be an error event with a hint: %s", describe(sw))
	}
	if sw[1].Kind != devices.KindData || sw[1].Data.TokenHash != token.Hash(testKey, pan) || len(sw[1].Data.Tracks) != 3 {
		t.Errorf("swiper: %s", describe(sw))
	}
	for _, tr := range sw[1].Data.Tracks {
		if len(tr.Data) > 0 && tr.Data[:6] == "622202" && tr.Data[6] != '*' {
			t.Errorf("track %d not masked", tr.N)
		}
	}
	if e := byDev["wedge"][0]; e.Kind != devices.KindData || e.Till != "T2" || e.Data.TokenHash != token.Hash(testKey, "0A00B1C2D3") {
		t.Errorf("wedge: %s", describe(byDev["wedge"]))
	}
	for _, p := range be.OpenedPaths() {
		if p == keyboard.Path {
			t.Error("an unconfigured keyboard was opened")
		}
	}
}
