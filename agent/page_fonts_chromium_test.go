//go:build linux

package agent

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/css"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"posagent/agent/web"
)

// Font directories of Debian's fonts-noto-cjk and fonts-dejavu-core.
const (
	notoCJKDir = "/usr/share/fonts/opentype/noto"
	dejavuDir  = "/usr/share/fonts/truetype/dejavu"
)

// browserWithFonts starts headless Chromium that sees only the fonts in
// dir, through a fontconfig file of its own, as a till with only those
// fonts installed would. The system's font cache is read when it is there
// (scanning the CJK fonts afresh takes seconds).
func browserWithFonts(t *testing.T, dir string) context.Context {
	t.Helper()
	path := chromium
	if p := os.Getenv("POSAGENT_CHROMIUM"); p != "" {
		path = p
	}
	if _, err := os.Stat(path); err != nil {
		t.Skipf("cashier page test skipped: Chromium not found at %s (apt-get install chromium, or set POSAGENT_CHROMIUM)", path)
	}
	tmp := t.TempDir()
	conf := filepath.Join(tmp, "fonts.conf")
	require.NoError(t, os.WriteFile(conf, []byte(fmt.Sprintf(`<?xml version="1.0"?>
<!DOCTYPE fontconfig SYSTEM "urn:fontconfig:fonts.dtd">
<fontconfig>
  <dir>%s</dir>
  <cachedir>/var/cache/fontconfig</cachedir>
  <cachedir>%s</cachedir>
</fontconfig>
`, dir, filepath.Join(tmp, "cache"))), 0o644))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(filepath.Join(tmp, "profile")),
		chromedp.WindowSize(1280, 800),
		chromedp.Env("FONTCONFIG_FILE="+conf),
	)
	ctx, cancelC := chromedp.NewContext(actx)
	ctx, cancelT := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(func() { cancelT(); cancelC(); cancelA() })
	require.NoError(t, chromedp.Do(ctx), "starting Chromium")
	return ctx
}

// glyphsJS draws each character of the element's text alone on a canvas
// in the element's own font and counts the different pictures: a font
// that has the characters draws each differently, while a font without
// them draws the same empty box ("tofu") for all.
const glyphsJS = `(() => {
	const el = document.querySelector(%s);
	const chars = Array.from(new Set(Array.from(el.textContent.trim())));
	const c = document.createElement('canvas'); c.width = 48; c.height = 48;
	const g = c.getContext('2d', {willReadFrequently: true});
	g.font = '32px ' + getComputedStyle(el).fontFamily;
	const seen = new Set();
	for (const ch of chars) {
		g.clearRect(0, 0, 48, 48);
		g.fillText(ch, 4, 36);
		const d = g.getImageData(0, 0, 48, 48).data;
		let h = 0;
		for (let i = 3; i < d.length; i += 4) h = (h * 31 + d[i]) >>> 0;
		seen.add(h);
	}
	return [chars.length, seen.size];
})()`

// rendering is how a label came out in one font setup.
type rendering struct {
	fonts    []string // platform fonts Chromium drew the label with
	chars    int      // distinct characters in the label
	pictures int      // distinct pictures they drew as
	png      []byte
}

func renderLabel(t *testing.T, fontDir, pageURL, sel string) rendering {
	t.Helper()
	ctx := browserWithFonts(t, fontDir)
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(pageURL),
		textIs(sel, "会员收银"),
	))
	var r rendering
	counts, err := chromedp.Run(ctx, chromedp.Evaluate[[]int](fmt.Sprintf(glyphsJS, jsString(sel))))
	require.NoError(t, err)
	require.Len(t, counts, 2)
	r.chars, r.pictures = counts[0], counts[1]
	nodes, err := chromedp.Run(ctx, chromedp.Nodes(sel))
	require.NoError(t, err)
	require.NotEmpty(t, nodes)
	_, err = chromedp.Call(ctx, css.Enable, cdp.Empty{})
	require.NoError(t, err)
	used, err := chromedp.Call(ctx, css.GetPlatformFontsForNode, css.GetPlatformFontsForNodeParams{NodeID: nodes[0].NodeID})
	require.NoError(t, err)
	for _, f := range used.Fonts {
		r.fonts = append(r.fonts, f.FamilyName)
	}
	r.png, err = chromedp.Run(ctx, chromedp.Screenshot(sel))
	require.NoError(t, err)
	return r
}

// TestChineseLabelsRenderWithNotoCJK: on a till whose only fonts are
// Debian's fonts-noto-cjk, the page's Chinese labels are drawn in Noto
// Sans CJK SC, named by the page's font stack, as real characters; with
// only DejaVu (no CJK font) the same check sees boxes, so it can tell.
func TestChineseLabelsRenderWithNotoCJK(t *testing.T) {
	if m, _ := filepath.Glob(filepath.Join(notoCJKDir, "NotoSansCJK*")); len(m) == 0 {
		if os.Getenv("CI") != "" {
			t.Fatalf("no Noto Sans CJK in %s: .ci/run installs fonts-noto-cjk", notoCJKDir)
		}
		t.Skipf("no Noto Sans CJK in %s (apt-get install fonts-noto-cjk)", notoCJKDir)
	}
	srv := httptest.NewServer(web.Handler())
	t.Cleanup(srv.Close)
	const title = `header h1 [data-i18n=title]`

	noto := renderLabel(t, notoCJKDir, srv.URL+"/?lang=zh", title)
	t.Logf("fonts-noto-cjk only: drawn with %v; %d characters, %d pictures", noto.fonts, noto.chars, noto.pictures)
	require.Contains(t, noto.fonts, "Noto Sans CJK SC", "the page's font stack picks the Simplified Chinese face")
	for _, f := range noto.fonts {
		require.True(t, strings.HasPrefix(f, "Noto Sans CJK"), "the Chinese title is drawn with %q, not a CJK font", f)
	}
	require.Equal(t, noto.chars, noto.pictures, "every character is its own glyph")

	if _, err := os.Stat(dejavuDir); err != nil {
		t.Logf("no %s to show what a till without CJK fonts draws", dejavuDir)
		return
	}
	tofu := renderLabel(t, dejavuDir, srv.URL+"/?lang=zh", title)
	t.Logf("DejaVu only: drawn with %v; %d characters, %d pictures", tofu.fonts, tofu.chars, tofu.pictures)
	require.Equal(t, 1, tofu.pictures, "without a CJK font every character is the same box")
	require.NotEqual(t, noto.png, tofu.png)

	// POSAGENT_SCREENSHOT_DIR keeps both pictures of the title for a look.
	if dir := os.Getenv("POSAGENT_SCREENSHOT_DIR"); dir != "" {
		require.NoError(t, os.WriteFile(filepath.Join(dir, "title-noto-cjk.png"), noto.png, 0o644))
		require.NoError(t, os.WriteFile(filepath.Join(dir, "title-no-cjk.png"), tofu.png, 0o644))
	}
}
