package main

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/coexist-dev/coexist/api"
	"github.com/coexist-dev/coexist/client"
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
// real server and agent running greeter 1.0.0 and 2.0.0, with two live SDK
// clients, web@1.5.0 and web@2.1.0, calling greeter five times each: the
// token pasted once, the routing matrix (rows from the census) shows
// web@1.5.0 served by greeter 1.0.0 and web@2.1.0 by greeter 2.0.0, the
// services table shows greeter 1.0.0's calls per minute (1 to 5), and
// retiring 1.0.0 (forced: it strands web@1.5.0) changes the page without a
// reload. With COEXIST_UI_SCREENSHOT=file it writes a screenshot (make docs
// uses it for the README).
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
	for _, v := range []string{"1.5.0", "2.1.0"} {
		sdk, err := client.New(context.Background(), client.Config{Name: "web", Version: v, Registry: f.server.url(), Token: testToken})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(sdk.Close)
		for range 5 {
			resp, err := (&http.Client{Transport: sdk.Transport(), Timeout: 10 * time.Second}).Get("http://greeter/hello")
			if err != nil {
				t.Fatalf("web@%s calls greeter: %v", v, err)
			}
			resp.Body.Close()
		}
	}
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
	if err := chromedp.Do(wctx, chromedp.WaitVisible(cell("1.5.0")), chromedp.WaitVisible(cell("2.1.0"))); err != nil {
		page, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
		t.Fatalf("the routing matrix: %v; the page says:\n%s", err, page)
	}
	m1, err1 := chromedp.Run(ctx, chromedp.Text(cell("1.5.0")))
	m2, err2 := chromedp.Run(ctx, chromedp.Text(cell("2.1.0")))
	if err1 != nil || err2 != nil || !strings.Contains(m1, "greeter 1.0.0") || !strings.Contains(m2, "greeter 2.0.0") {
		t.Fatalf("routing matrix: web@1.5.0 → %q, web@2.1.0 → %q (%v, %v); want greeter 1.0.0 and greeter 2.0.0", m1, m2, err1, err2)
	}
	if label, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#matrix tr[data-client="1.5.0"] th`))); err != nil || !strings.Contains(label, "web@1.5.0") {
		t.Errorf("the matrix row of web@1.5.0 is labelled %q (%v)", label, err)
	}
	kept, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`sessionStorage.getItem("coexist-token") !== null && document.getElementById("token").value === ""`))
	if err != nil || !kept {
		t.Errorf("the token is not kept in session storage only: %v", err)
	}
	// The agent reports calls per minute at its in-flight report interval
	// (10 s); the page shows them summed per version without a reload.
	calls := chromedp.CSS(`#services tr[data-service="greeter"][data-version="1.0.0"] td.calls-per-minute`)
	waitFor(t, 40*time.Second, "the services table to show calls per minute for greeter 1.0.0", func() bool {
		s, err := chromedp.Run(ctx, chromedp.Text(calls))
		n, perr := strconv.Atoi(strings.TrimSpace(s))
		return err == nil && perr == nil && n > 0 && n <= 5
	})
	if shot := os.Getenv("COEXIST_UI_SCREENSHOT"); shot != "" {
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(shot, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	if _, _, err := f.api.Services().Retire(context.Background(), "greeter", "1.0.0", &api.WriteOptions{Force: true}); err != nil {
		t.Fatalf("retire greeter 1.0.0 (forced): %v", err)
	}
	row := chromedp.CSS(`#services tr[data-service="greeter"][data-version="1.0.0"] td.version-state`)
	waitFor(t, 40*time.Second, "the page to show greeter 1.0.0 retired", func() bool {
		st, err := chromedp.Run(ctx, chromedp.Text(row))
		return err == nil && st == api.VersionRetired
	})
	marker, err := chromedp.Run(ctx, chromedp.Evaluate[string](`window.__loaded || "reloaded"`))
	if err != nil || marker != "once" {
		t.Fatalf("the page was reloaded (%q, %v); it must update in place", marker, err)
	}
	waitFor(t, 10*time.Second, "the matrix to show web@1.5.0 with nothing to call", func() bool {
		m, err := chromedp.Run(ctx, chromedp.Text(cell("1.5.0")))
		return err == nil && strings.Contains(m, "none")
	})
}
