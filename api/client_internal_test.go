package api

import (
	"net/http"
	"testing"
)

func TestDefaultHTTPClient(t *testing.T) {
	c, err := NewClient(&Config{Address: "http://127.0.0.1:7700"})
	if err != nil {
		t.Fatal(err)
	}
	if c.http.Timeout != 0 {
		t.Errorf("Timeout = %v; blocking queries need none", c.http.Timeout)
	}
	tr, ok := c.http.Transport.(*http.Transport)
	if !ok {
		t.Fatalf("Transport is %T", c.http.Transport)
	}
	if tr == http.DefaultTransport {
		t.Error("shares http.DefaultTransport")
	}
	if tr.MaxIdleConnsPerHost < 64 {
		t.Errorf("MaxIdleConnsPerHost = %d", tr.MaxIdleConnsPerHost)
	}
	if tr.DialContext == nil || tr.TLSHandshakeTimeout == 0 {
		t.Error("dial or handshake not bounded")
	}

	own := &http.Client{}
	c, err = NewClient(&Config{HTTPClient: own})
	if err != nil {
		t.Fatal(err)
	}
	if c.http != own {
		t.Error("Config.HTTPClient not used")
	}
}
