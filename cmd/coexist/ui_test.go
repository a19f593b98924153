package main

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/coexist-dev/coexist/api"
)

// chromiumPath finds the headless browser the UI test drives; the
// Makefile installs Debian's chromium when it is missing.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{os.Getenv("COEXIST_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"} {
		if name == "" {
			continue
		}
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no chromium on PATH: run `make test` (it installs Debian's chromium) or set COEXIST_CHROMIUM")
	return ""
}

// TestUIInBrowser loads the registry's UI in headless Chromium against a
// real server and agent running greeter 1.0.0 and 2.0.0: the token pasted
// once, the routing matrix shows client 1.x served by greeter 1.0.0 and
// client 2.x by greeter 2.0.0, and retiring 1.0.0 changes the page without
// a reload. With COEXIST_UI_SCREENSHOT=file it writes a screenshot (make
// docs uses it for the README).
func TestUIInBrowser(t *testing.T) {
	skipShort(t)
	browser := chromiumPath(t)
	f := newFleet(t)
	f.startAgent("n1")
	f.declare("greeter", "1.0.0", ">= 1.0, < 2.0")
	f.declare("greeter", "2.0.0", ">= 2.0, < 3.0")
	f.greeter("greeter-1", "n1", "1.0.0", nil)
	f.greeter("greeter-2", "n1", "2.0.0", nil)
	f.waitState("greeter-1", api.ContainerRunning)
	f.waitState("greeter-2", api.ContainerRunning)
	read, _, err := f.api.ACL().CreateToken(context.Background(), api.TokenRequest{Role: api.RoleRead, Description: "ui"}, nil)
	if err != nil {
		t.Fatal(err)
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(browser), chromedp.NoSandbox,
		chromedp.WindowSize(1280, 1100), chromedp.UserDataDir(t.TempDir()))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelA()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, 90*time.Second)
	defer cancelT()

	cell := func(client string) chromedp.CSS {
		return chromedp.CSS(`#matrix tr[data-client="` + client + `"] td[data-service="greeter"]`)
	}
	err = chromedp.Do(ctx,
		chromedp.Navigate(f.server.url()+"/ui/"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), read.SecretID),
		chromedp.Click(chromedp.CSS(`#token-form button[type="submit"]`)),
	)
	if err != nil {
		t.Fatalf("load the UI: %v", err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[string](`window.__loaded = "once"`)); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	if err := chromedp.Do(wctx, chromedp.WaitVisible(cell("1.0.0")), chromedp.WaitVisible(cell("2.0.0"))); err != nil {
		page, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
		t.Fatalf("the routing matrix: %v; the page says:\n%s", err, page)
	}
	m1, err1 := chromedp.Run(ctx, chromedp.Text(cell("1.0.0")))
	m2, err2 := chromedp.Run(ctx, chromedp.Text(cell("2.0.0")))
	if err1 != nil || err2 != nil || !strings.Contains(m1, "greeter 1.0.0") || !strings.Contains(m2, "greeter 2.0.0") {
		t.Fatalf("routing matrix: client 1.0.0 → %q, client 2.0.0 → %q (%v, %v); want greeter 1.0.0 and greeter 2.0.0", m1, m2, err1, err2)
	}
	kept, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`sessionStorage.getItem("coexist-token") !== null && document.getElementById("token").value === ""`))
	if err != nil || !kept {
		t.Errorf("the token is not kept in session storage only: %v", err)
	}
	if shot := os.Getenv("COEXIST_UI_SCREENSHOT"); shot != "" {
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(shot, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	f.retire("greeter", "1.0.0")
	row := chromedp.CSS(`#services tr[data-service="greeter"][data-version="1.0.0"] td.version-state`)
	waitFor(t, 40*time.Second, "the page to show greeter 1.0.0 retired", func() bool {
		st, err := chromedp.Run(ctx, chromedp.Text(row))
		return err == nil && st == api.VersionRetired
	})
	marker, err := chromedp.Run(ctx, chromedp.Evaluate[string](`window.__loaded || "reloaded"`))
	if err != nil || marker != "once" {
		t.Fatalf("the page was reloaded (%q, %v); it must update in place", marker, err)
	}
	waitFor(t, 10*time.Second, "the matrix to drop client 1.0.0", func() bool {
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('#matrix tr[data-client="1.0.0"]').length`))
		return err == nil && n == 0
	})
}
