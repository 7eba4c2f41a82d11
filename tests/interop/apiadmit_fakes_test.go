package interop

// Fakes of the two control-plane APIs derpd's -verify-clients-api backend
// reads (issue 14), and the helpers the TestAdmissionAPI* tests share.
//
// fakeTSAPI is Tailscale's API as documented: POST /api/v2/oauth/token
// (client credentials) and GET /api/v2/tailnet/{tailnet}/devices, the
// devices built from the official Go client's type
// (tailscale.com/client/tailscale/v2 Device), so the field names are the
// real ones. fakeHeadscale is headscale's GET /api/v1/node with its v1 Node
// schema (our own structs, written from the facts of headscale's
// hscontrol/api/v1 types). Both listen on 127.0.0.1 over plain HTTP and
// record every request, so a test can check what derpd asked and when.

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	tsclient "tailscale.com/client/tailscale/v2"
	"tailscale.com/derp"
	"tailscale.com/derp/derphttp"
	"tailscale.com/types/key"
)

// apiFail is a failure mode of a fake API's list endpoint.
type apiFail int

const (
	apiOK      apiFail = iota
	api401             // 401 Unauthorized
	api403             // 403 Forbidden
	api500             // 500 Internal Server Error
	api429             // 429 Too Many Requests with Retry-After (see SetFail)
	apiBadJSON         // 200 with a body that is not the schema
)

// apiReq is one request a fake saw.
type apiReq struct {
	At       time.Time
	Endpoint string // "token", "list" or "other"
	Status   int
	// Auth says what the credential carried was: "ok" (the API key, a
	// live token, the right OAuth client), "expired" (a token the fake
	// issued, past its expiry), "unknown" or "missing".
	Auth  string
	Early bool   // arrived before the time a 429's Retry-After allowed
	Note  string // anything else wrong with it (path, query, method, form)
	Query string
}

// ---------------------------------------------------------------------------
// Tailscale API

type fakeTSAPI struct {
	t   *testing.T
	srv *httptest.Server
	URL string

	ClientID, ClientSecret string // OAuth client (mode "oauth")
	APIKey                 string // API access token (mode "api_key")
	Tailnet                string // the {tailnet} path element the fake serves
	// Gzip: answer the list gzip-compressed when the request accepts it
	// (set before derpd starts). GzipServed counts such answers.
	Gzip       bool
	GzipServed int
	// Raw, when set, is sent as the list's body instead of the devices
	// (for entries the Device type cannot express).
	Raw []byte

	mu        sync.Mutex
	tokenTTL  int                  // expires_in of issued tokens, seconds
	tokens    map[string]time.Time // access token -> expiry
	issued    []string
	devices   []tsclient.Device
	fail      apiFail
	failLeft  int // failures left in mode fail; < 0: until changed
	retryHdr  func(now time.Time) (hdr string, until time.Time)
	notBefore time.Time // no request allowed before this (after a 429)
	tokenFail apiFail   // failure mode of the token endpoint (api429, api500)
	tokenLeft int
	reqs      []apiReq
	closed    bool
}

// newFakeTSAPI starts a fake Tailscale API serving tailnet (the path element
// derpd must use) with an OAuth client and an API key both accepted.
func newFakeTSAPI(t *testing.T, tailnet string) *fakeTSAPI {
	t.Helper()
	f := &fakeTSAPI{
		t:            t,
		ClientID:     "k" + apiRandHex(8) + "CNTRL",
		ClientSecret: "tskey-client-k" + apiRandHex(8) + "CNTRL-" + apiRandHex(16),
		APIKey:       "tskey-api-k" + apiRandHex(8) + "CNTRL-" + apiRandHex(16),
		Tailnet:      tailnet,
		tokenTTL:     3600,
		tokens:       map[string]time.Time{},
	}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	f.URL = f.srv.URL
	t.Cleanup(f.Close)
	return f
}

// Close stops the server: connections are refused from now on ("gone").
func (f *fakeTSAPI) Close() {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return
	}
	f.closed = true
	f.mu.Unlock()
	f.srv.CloseClientConnections()
	f.srv.Close()
}

// SetTokenTTL sets expires_in (seconds) for tokens issued from now on.
func (f *fakeTSAPI) SetTokenTTL(sec int) {
	f.mu.Lock()
	f.tokenTTL = sec
	f.mu.Unlock()
}

// SetFail makes the next n list requests fail with mode (n < 0: until
// SetFail(apiOK, 0)). For api429, hdr gives the Retry-After header value
// and the time before which no request may come (nil: "2" seconds).
func (f *fakeTSAPI) SetFail(mode apiFail, n int, hdr func(now time.Time) (string, time.Time)) {
	f.mu.Lock()
	f.fail, f.failLeft, f.retryHdr = mode, n, hdr
	f.mu.Unlock()
}

// SetTokenFail makes the next n token requests fail with mode (api429
// with hdr as in SetFail, or api500).
func (f *fakeTSAPI) SetTokenFail(mode apiFail, n int, hdr func(now time.Time) (string, time.Time)) {
	f.mu.Lock()
	f.tokenFail, f.tokenLeft, f.retryHdr = mode, n, hdr
	f.mu.Unlock()
}

func (f *fakeTSAPI) SetDevices(devs ...tsclient.Device) {
	f.mu.Lock()
	f.devices = append([]tsclient.Device(nil), devs...)
	f.mu.Unlock()
}

func (f *fakeTSAPI) AddDevice(d tsclient.Device) {
	f.mu.Lock()
	f.devices = append(f.devices, d)
	f.mu.Unlock()
}

// RemoveDevice deletes the device with node key k; false if none.
func (f *fakeTSAPI) RemoveDevice(k key.NodePublic) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, d := range f.devices {
		if d.NodeKey == nodeKeyText(k) {
			f.devices = append(f.devices[:i], f.devices[i+1:]...)
			return true
		}
	}
	return false
}

// UpdateDevice changes the device with node key k in place.
func (f *fakeTSAPI) UpdateDevice(k key.NodePublic, fn func(*tsclient.Device)) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.devices {
		if f.devices[i].NodeKey == nodeKeyText(k) {
			fn(&f.devices[i])
			return true
		}
	}
	return false
}

// Reqs returns a copy of the request log.
func (f *fakeTSAPI) Reqs() []apiReq {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]apiReq(nil), f.reqs...)
}

// Count is the number of requests to endpoint ("token" or "list").
func (f *fakeTSAPI) Count(endpoint string) int {
	n := 0
	for _, r := range f.Reqs() {
		if r.Endpoint == endpoint {
			n++
		}
	}
	return n
}

// Issued returns the access tokens handed out so far.
func (f *fakeTSAPI) Issued() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.issued...)
}

// checkClean reports every request that was wrong in a way the contract
// forbids: an expired or unknown token on the list, a request before
// Retry-After allowed, a wrong path, query, method or form.
func (f *fakeTSAPI) checkClean(t *testing.T) {
	t.Helper()
	for _, r := range f.Reqs() {
		if r.Early {
			t.Errorf("fake Tailscale API: %s request at %s came before the Retry-After time", r.Endpoint, r.At.Format("15:04:05.000"))
		}
		if r.Endpoint == "list" && r.Auth != "ok" {
			t.Errorf("fake Tailscale API: list request at %s carried a credential that is %q", r.At.Format("15:04:05.000"), r.Auth)
		}
		if r.Note != "" {
			t.Errorf("fake Tailscale API: %s request at %s: %s", r.Endpoint, r.At.Format("15:04:05.000"), r.Note)
		}
	}
}

func (f *fakeTSAPI) serve(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	rec := apiReq{At: now, Endpoint: "other", Query: r.URL.RawQuery}
	defer func() { f.reqs = append(f.reqs, rec) }()
	reply := func(status int, v any) {
		rec.Status = status
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(v)
	}
	switch {
	case r.URL.Path == "/api/v2/oauth/token":
		rec.Endpoint = "token"
		if now.Before(f.notBefore) {
			rec.Early = true
		}
		if r.Method != http.MethodPost {
			rec.Note = "token request with method " + r.Method
			reply(http.StatusMethodNotAllowed, map[string]string{"message": "method not allowed"})
			return
		}
		if err := r.ParseForm(); err != nil {
			rec.Note = "token request body: " + err.Error()
			reply(http.StatusBadRequest, map[string]string{"error": "invalid_request"})
			return
		}
		id, secret := r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
		if id == "" && secret == "" { // RFC 6749 also allows HTTP Basic
			id, secret, _ = r.BasicAuth()
		}
		if g := r.PostForm.Get("grant_type"); g != "client_credentials" {
			rec.Note = fmt.Sprintf("token request grant_type %q", g)
			reply(http.StatusBadRequest, map[string]string{"error": "unsupported_grant_type"})
			return
		}
		if id != f.ClientID || secret != f.ClientSecret {
			rec.Auth = "unknown"
			reply(http.StatusUnauthorized, map[string]string{"error": "invalid_client"})
			return
		}
		rec.Auth = "ok"
		if f.tokenFail != apiOK && f.tokenLeft != 0 {
			if f.tokenLeft > 0 {
				f.tokenLeft--
			}
			if f.tokenFail == api429 {
				hdr, until := "2", now.Add(2*time.Second)
				if f.retryHdr != nil {
					hdr, until = f.retryHdr(now)
				}
				f.notBefore = until
				w.Header().Set("Retry-After", hdr)
				reply(http.StatusTooManyRequests, map[string]string{"message": "rate limit exceeded"})
			} else {
				reply(http.StatusInternalServerError, map[string]string{"message": "internal server error"})
			}
			return
		}
		tok := "tskey-api-t" + apiRandHex(8) + "-" + apiRandHex(16)
		f.tokens[tok] = now.Add(time.Duration(f.tokenTTL) * time.Second)
		f.issued = append(f.issued, tok)
		reply(http.StatusOK, map[string]any{
			"access_token": tok,
			"token_type":   "Bearer",
			"expires_in":   f.tokenTTL,
			"scope":        "devices:core:read",
		})
		return
	case strings.HasPrefix(r.URL.Path, "/api/v2/tailnet/") && strings.HasSuffix(r.URL.Path, "/devices"):
		rec.Endpoint = "list"
	default:
		rec.Note = "unexpected request " + r.Method + " " + r.URL.String()
		reply(http.StatusNotFound, map[string]string{"message": "not found"})
		return
	}

	// The devices list.
	if now.Before(f.notBefore) {
		rec.Early = true
	}
	if r.Method != http.MethodGet {
		rec.Note = "list request with method " + r.Method
	}
	tn := strings.TrimSuffix(strings.TrimPrefix(r.URL.EscapedPath(), "/api/v2/tailnet/"), "/devices")
	if tn != f.Tailnet {
		rec.Note = fmt.Sprintf("list request for tailnet %q, want %q", tn, f.Tailnet)
		reply(http.StatusNotFound, map[string]string{"message": "tailnet not found"})
		return
	}
	if r.URL.Query().Get("fields") != "all" {
		rec.Note = fmt.Sprintf("list request query %q, want fields=all", r.URL.RawQuery)
	}
	authz := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(authz, "Bearer ")
	switch {
	case authz == "":
		rec.Auth = "missing"
	case !ok:
		rec.Auth = "unknown"
	case tok == f.APIKey:
		rec.Auth = "ok"
	default:
		exp, known := f.tokens[tok]
		switch {
		case !known:
			rec.Auth = "unknown"
		case !now.Before(exp):
			rec.Auth = "expired"
		default:
			rec.Auth = "ok"
		}
	}
	if rec.Auth != "ok" {
		reply(http.StatusUnauthorized, map[string]string{"message": "API token invalid"})
		return
	}
	if f.fail != apiOK && f.failLeft != 0 {
		if f.failLeft > 0 {
			f.failLeft--
		}
		switch f.fail {
		case api401:
			reply(http.StatusUnauthorized, map[string]string{"message": "API token invalid"})
		case api403:
			reply(http.StatusForbidden, map[string]string{"message": "calling actor does not have enough permissions to perform this function"})
		case api500:
			reply(http.StatusInternalServerError, map[string]string{"message": "internal server error"})
		case api429:
			hdr, until := "2", now.Add(2*time.Second)
			if f.retryHdr != nil {
				hdr, until = f.retryHdr(now)
			}
			f.notBefore = until
			w.Header().Set("Retry-After", hdr)
			reply(http.StatusTooManyRequests, map[string]string{"message": "rate limit exceeded"})
		case apiBadJSON:
			rec.Status = http.StatusOK
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"devices": [{"nodeKey": 42, `))
		}
		return
	}
	devs := append(make([]tsclient.Device, 0, len(f.devices)), f.devices...) // [] when empty, not null
	body := f.Raw
	if body == nil {
		body, _ = json.Marshal(map[string]any{"devices": devs})
	}
	rec.Status = http.StatusOK
	w.Header().Set("Content-Type", "application/json")
	if f.Gzip && strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
		var zb bytes.Buffer
		zw := gzip.NewWriter(&zb)
		zw.Write(body)
		zw.Close()
		f.GzipServed++
		w.Header().Set("Content-Encoding", "gzip")
		w.Write(zb.Bytes())
		return
	}
	w.Write(body)
}

// tsDevice is a device as Tailscale's API lists it with fields=all:
// authorized, key expiring in 180 days, user alice@example.com, untagged,
// addresses 100.64.0.n and fd7a:115c:a1e0::n. mods change it.
func tsDevice(k key.NodePublic, host string, n int, mods ...func(*tsclient.Device)) tsclient.Device {
	now := time.Now().UTC().Truncate(time.Second)
	seen := tsclient.Time{Time: now.Add(-time.Minute)}
	id := fmt.Sprint(7000000000000000 + n)
	d := tsclient.Device{
		Addresses:          []string{fmt.Sprintf("100.64.%d.%d", n/250, n%250+1), fmt.Sprintf("fd7a:115c:a1e0::%x", n+1)},
		Name:               host + ".tail4a2b3.ts.net",
		ID:                 id,
		NodeID:             "n" + apiRandHex(6) + "CNTRL",
		Authorized:         true,
		User:               "alice@example.com",
		Tags:               []string{},
		KeyExpiryDisabled:  false,
		ClientVersion:      "1.102.3-t5d1bba4e2-g6a7b8c9d0",
		Created:            tsclient.Time{Time: now.Add(-30 * 24 * time.Hour)},
		Expires:            tsclient.Time{Time: now.Add(180 * 24 * time.Hour)},
		Hostname:           host,
		ConnectedToControl: false,
		LastSeen:           &seen,
		MachineKey:         "mkey:" + apiRandHex(32),
		NodeKey:            nodeKeyText(k),
		OS:                 "linux",
		UpdateAvailable:    false,
		PostureIdentity:    &tsclient.DevicePostureIdentity{SerialNumbers: []string{}},
		AdvertisedRoutes:   []string{},
		EnabledRoutes:      []string{},
		ClientConnectivity: &tsclient.ClientConnectivity{
			Endpoints:   []string{"192.0.2.10:41641"},
			DERP:        "",
			DERPLatency: map[string]tsclient.DERPRegion{"Frankfurt": {Preferred: true, LatencyMilliseconds: 12.5}},
			ClientSupports: tsclient.ClientSupports{
				IPV6: true, UDP: true,
			},
		},
		Distro: &tsclient.Distro{Name: "debian", Version: "13", CodeName: "trixie"},
	}
	for _, m := range mods {
		m(&d)
	}
	return d
}

// ---------------------------------------------------------------------------
// headscale API

// hsUser is headscale's v1 User message.
type hsUser struct {
	ID            string    `json:"id"`
	Name          string    `json:"name"`
	CreatedAt     time.Time `json:"createdAt"`
	DisplayName   string    `json:"displayName"`
	Email         string    `json:"email"`
	ProviderID    string    `json:"providerId"`
	Provider      string    `json:"provider"`
	ProfilePicURL string    `json:"profilePicUrl"`
}

// hsPreAuthKey is the pre-auth key embedded in a v1 Node.
type hsPreAuthKey struct {
	User       *hsUser    `json:"user"`
	ID         string     `json:"id"`
	Key        string     `json:"key"`
	Reusable   bool       `json:"reusable"`
	Ephemeral  bool       `json:"ephemeral"`
	Used       bool       `json:"used"`
	Expiration *time.Time `json:"expiration"`
	CreatedAt  *time.Time `json:"createdAt"`
	ACLTags    []string   `json:"aclTags"`
}

// hsNode is headscale's v1 Node message (protojson: every field present,
// optional timestamps null).
type hsNode struct {
	ID              string        `json:"id"`
	MachineKey      string        `json:"machineKey"`
	NodeKey         string        `json:"nodeKey"`
	DiscoKey        string        `json:"discoKey"`
	IPAddresses     []string      `json:"ipAddresses"`
	Name            string        `json:"name"`
	User            *hsUser       `json:"user"`
	LastSeen        *time.Time    `json:"lastSeen"`
	Expiry          *time.Time    `json:"expiry"`
	PreAuthKey      *hsPreAuthKey `json:"preAuthKey"`
	CreatedAt       time.Time     `json:"createdAt"`
	RegisterMethod  string        `json:"registerMethod"`
	GivenName       string        `json:"givenName"`
	Online          bool          `json:"online"`
	ApprovedRoutes  []string      `json:"approvedRoutes"`
	AvailableRoutes []string      `json:"availableRoutes"`
	SubnetRoutes    []string      `json:"subnetRoutes"`
	Tags            []string      `json:"tags"`
}

type fakeHeadscale struct {
	t      *testing.T
	srv    *httptest.Server
	URL    string
	APIKey string

	mu       sync.Mutex
	nodes    []hsNode
	nextID   int
	fail     apiFail
	failLeft int
	reqs     []apiReq
	closed   bool
	// registered: when each node key was added (AddNode).
	registered map[string]time.Time
}

func newFakeHeadscale(t *testing.T) *fakeHeadscale {
	t.Helper()
	f := &fakeHeadscale{
		t: t,
		// headscale API keys: a prefix, a dot, the secret.
		APIKey:     apiRandHex(5) + "." + apiRandHex(24),
		nextID:     1,
		registered: map[string]time.Time{},
	}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	f.URL = f.srv.URL
	t.Cleanup(f.Close)
	return f
}

func (f *fakeHeadscale) Close() {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return
	}
	f.closed = true
	f.mu.Unlock()
	f.srv.CloseClientConnections()
	f.srv.Close()
}

func (f *fakeHeadscale) SetFail(mode apiFail, n int) {
	f.mu.Lock()
	f.fail, f.failLeft = mode, n
	f.mu.Unlock()
}

// hsNodeFor builds a node the way headscale lists one registered with a
// pre-auth key by user "alice": no expiry (null), online, one IPv4 and one
// IPv6 address. mods change it.
func hsNodeFor(k key.NodePublic, host string, n int, mods ...func(*hsNode)) hsNode {
	now := time.Now().UTC().Truncate(time.Millisecond)
	created := now.Add(-2 * time.Hour)
	u := &hsUser{ID: "1", Name: "alice", CreatedAt: now.Add(-48 * time.Hour), DisplayName: "Alice",
		Email: "alice@example.com", ProviderID: "", Provider: "", ProfilePicURL: ""}
	seen := now.Add(-10 * time.Second)
	node := hsNode{
		ID:          "0", // set by AddNode
		MachineKey:  "mkey:" + apiRandHex(32),
		NodeKey:     nodeKeyText(k),
		DiscoKey:    "discokey:" + apiRandHex(32),
		IPAddresses: []string{fmt.Sprintf("100.64.%d.%d", n/250, n%250+1), fmt.Sprintf("fd7a:115c:a1e0::%x", n+1)},
		Name:        host,
		User:        u,
		LastSeen:    &seen,
		Expiry:      nil,
		PreAuthKey: &hsPreAuthKey{User: u, ID: "1", Key: "hskey-auth-" + apiRandHex(6) + "-***", Reusable: true,
			Used: true, CreatedAt: &created, ACLTags: []string{}},
		CreatedAt:       created,
		RegisterMethod:  "REGISTER_METHOD_AUTH_KEY",
		GivenName:       host,
		Online:          true,
		ApprovedRoutes:  []string{},
		AvailableRoutes: []string{},
		SubnetRoutes:    []string{},
		Tags:            []string{},
	}
	for _, m := range mods {
		m(&node)
	}
	return node
}

// AddNode registers a node (gives it the next id) and notes the time.
func (f *fakeHeadscale) AddNode(n hsNode) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n.ID = strconv.Itoa(f.nextID)
	f.nextID++
	f.nodes = append(f.nodes, n)
	f.registered[n.NodeKey] = time.Now()
}

// UpdateNode changes the node with key k in place.
func (f *fakeHeadscale) UpdateNode(k key.NodePublic, fn func(*hsNode)) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.nodes {
		if f.nodes[i].NodeKey == nodeKeyText(k) {
			fn(&f.nodes[i])
			return true
		}
	}
	return false
}

func (f *fakeHeadscale) DeleteNode(k key.NodePublic) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, n := range f.nodes {
		if n.NodeKey == nodeKeyText(k) {
			f.nodes = append(f.nodes[:i], f.nodes[i+1:]...)
			return true
		}
	}
	return false
}

func (f *fakeHeadscale) Reqs() []apiReq {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]apiReq(nil), f.reqs...)
}

func (f *fakeHeadscale) Count(endpoint string) int {
	n := 0
	for _, r := range f.Reqs() {
		if r.Endpoint == endpoint {
			n++
		}
	}
	return n
}

func (f *fakeHeadscale) checkClean(t *testing.T) {
	t.Helper()
	for _, r := range f.Reqs() {
		if r.Auth != "ok" || r.Note != "" {
			t.Errorf("fake headscale: %s request at %s: auth %q %s", r.Endpoint, r.At.Format("15:04:05.000"), r.Auth, r.Note)
		}
	}
}

func (f *fakeHeadscale) serve(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	rec := apiReq{At: now, Endpoint: "other", Query: r.URL.RawQuery}
	defer func() { f.reqs = append(f.reqs, rec) }()
	reply := func(status int, v any) {
		rec.Status = status
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(v)
	}
	problem := func(status int, title, detail string) {
		// huma's RFC 9457 problem body
		rec.Status = status
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(map[string]any{"title": title, "status": status, "detail": detail})
	}
	if r.URL.Path != "/api/v1/node" {
		rec.Note = "unexpected request " + r.Method + " " + r.URL.String()
		problem(http.StatusNotFound, "Not Found", "no such path")
		return
	}
	rec.Endpoint = "list"
	if r.Method != http.MethodGet {
		rec.Note = "list request with method " + r.Method
	}
	authz := r.Header.Get("Authorization")
	switch tok, ok := strings.CutPrefix(authz, "Bearer "); {
	case authz == "":
		rec.Auth = "missing"
	case !ok || tok != f.APIKey:
		rec.Auth = "unknown"
	default:
		rec.Auth = "ok"
	}
	if rec.Auth != "ok" {
		problem(http.StatusUnauthorized, "Unauthorized", "invalid or missing API key")
		return
	}
	if f.fail != apiOK && f.failLeft != 0 {
		if f.failLeft > 0 {
			f.failLeft--
		}
		switch f.fail {
		case api401:
			problem(http.StatusUnauthorized, "Unauthorized", "invalid or missing API key")
		case api403:
			problem(http.StatusForbidden, "Forbidden", "forbidden")
		default:
			problem(http.StatusInternalServerError, "Internal Server Error", "listing nodes: database is locked")
		}
		return
	}
	nodes := append([]hsNode{}, f.nodes...)
	reply(http.StatusOK, map[string]any{"nodes": nodes})
}

// ---------------------------------------------------------------------------
// Shared helpers

func apiRandHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// nodeKeyText is "nodekey:<64 hex>".
func nodeKeyText(k key.NodePublic) string {
	b, _ := k.MarshalText()
	return string(b)
}

// writeAPICreds writes a credentials file (JSON of v) with mode perm.
func writeAPICreds(t *testing.T, dir string, v map[string]string, perm os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, "api-creds.json")
	b, _ := json.Marshal(v)
	if err := os.WriteFile(p, b, perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, perm); err != nil { // not subject to the umask
		t.Fatal(err)
	}
	return p
}

// apiDerpd is a derpd started with -verify-clients-api and an admin socket.
type apiDerpd struct {
	*derpd
	Admin string // admin socket
	State string // -verify-clients-api-state file ("" when left to the default)
	Creds string
}

// apiSetup says how to start derpd with the API backend.
type apiSetup struct {
	API     string // "tailscale" or "headscale"
	URL     string
	Tailnet string // "" leaves the default
	Creds   map[string]string
	// State is the state file; "" = a fresh file in the test's temp dir,
	// "-" = leave the flag out (derpd's default next to the -c key file).
	State   string
	Extra   []string
	Port    int    // fixed listen port (0: ephemeral)
	KeyFile string // -c
	NoSTUN  bool
	STUN    int // a fixed STUN port (0: ephemeral)
}

func startAPIDerpd(t *testing.T, s apiSetup) *apiDerpd {
	t.Helper()
	dir := t.TempDir()
	ad := &apiDerpd{Admin: filepath.Join(dir, "admin.sock")}
	ad.Creds = writeAPICreds(t, dir, s.Creds, 0o600)
	args := []string{"-verify-clients-api", s.API, "-verify-clients-api-url", s.URL,
		"-verify-clients-api-credentials", ad.Creds, "-admin-socket", ad.Admin}
	if s.Tailnet != "" {
		args = append(args, "-verify-clients-api-tailnet", s.Tailnet)
	}
	switch s.State {
	case "":
		ad.State = filepath.Join(dir, "api-state.json")
		args = append(args, "-verify-clients-api-state", ad.State)
	case "-":
	default:
		ad.State = s.State
		args = append(args, "-verify-clients-api-state", ad.State)
	}
	if s.STUN != 0 {
		args = append(args, fmt.Sprintf("--stun-port=%d", s.STUN))
	}
	args = append(args, s.Extra...)
	ad.derpd = startDerpd(t, derpdOpts{ExtraArgs: args, Port: s.Port, KeyFile: s.KeyFile, NoSTUN: s.NoSTUN})
	return ad
}

// showAPI returns `show admission`'s result.admission.api object and the
// whole reply line.
func (ad *apiDerpd) showAPI(t *testing.T) (map[string]any, string) {
	t.Helper()
	line := adminCall(t, ad.Admin, "show admission", nil)
	var reply struct {
		Result struct {
			Admission struct {
				API map[string]any `json:"api"`
			} `json:"admission"`
		} `json:"result"`
	}
	if err := json.Unmarshal([]byte(line), &reply); err != nil {
		t.Fatalf("show admission: bad JSON (%v): %s", err, line)
	}
	if reply.Result.Admission.API == nil {
		t.Fatalf("show admission has no result.admission.api object: %s", line)
	}
	return reply.Result.Admission.API, line
}

// apiNum reads a number field of a show object (NaN-free: missing is -999).
func apiNum(m map[string]any, k string) float64 {
	if v, ok := m[k].(float64); ok {
		return v
	}
	return -999
}

func apiStr(m map[string]any, k string) string {
	if v, ok := m[k].(string); ok {
		return v
	}
	return fmt.Sprintf("<%T %v>", m[k], m[k])
}

// apiShowFields checks that show admission's api object has every
// field of the contract.
func apiShowFields(t *testing.T, m map[string]any) {
	t.Helper()
	for _, f := range []string{"api", "url", "tailnet", "credentials", "state_file", "devices", "admittable",
		"source", "last_attempt", "last_success", "age_seconds", "next_sync_seconds", "last_error",
		"syncs_ok", "syncs_failed", "requests", "on_demand", "suppressed", "revoked"} {
		if _, ok := m[f]; !ok {
			t.Errorf("show admission: api object has no %q field: %v", f, m)
		}
	}
}

// apiProbe connects a derphttp client with priv and reports whether derpd
// admitted it (ServerInfo first) or refused it (Recv error first). No
// t.Fatal: safe from other goroutines.
func apiProbe(d *derpd, priv key.NodePrivate, timeout time.Duration) (admitted bool, err error) {
	c, err := derphttp.NewClient(priv, d.URL(), func(string, ...any) {}, netmonStatic())
	if err != nil {
		return false, err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := c.Connect(ctx); err != nil {
		return false, fmt.Errorf("connect: %w", err)
	}
	type res struct {
		m   derp.ReceivedMessage
		err error
	}
	ch := make(chan res, 1)
	go func() {
		for {
			m, err := c.Recv()
			if _, ok := m.(derp.KeepAliveMessage); ok && err == nil {
				continue
			}
			ch <- res{m, err}
			return
		}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return false, r.err
		}
		if _, ok := r.m.(derp.ServerInfoMessage); ok {
			return true, nil
		}
		return false, fmt.Errorf("first message %s, want ServerInfo or an error", describe(r.m))
	case <-time.After(timeout):
		return false, fmt.Errorf("no first message within %v", timeout)
	}
}

// apiMustAdmit requires derpd to admit priv now.
func apiMustAdmit(t *testing.T, d *derpd, priv key.NodePrivate, what string) {
	t.Helper()
	ok, err := apiProbe(d, priv, 10*time.Second)
	if !ok {
		t.Errorf("%s (%v): refused, want admitted: %v", what, priv.Public().ShortString(), err)
	}
}

// apiMustRefuse requires derpd to refuse priv now.
func apiMustRefuse(t *testing.T, d *derpd, priv key.NodePrivate, what string) {
	t.Helper()
	ok, err := apiProbe(d, priv, 10*time.Second)
	if ok {
		t.Errorf("%s (%v): admitted, want refused", what, priv.Public().ShortString())
	} else if e := fmt.Sprint(err); strings.Contains(e, "no first message") || strings.Contains(e, "connection refused") {
		t.Errorf("%s (%v): neither admitted nor refused: %v", what, priv.Public().ShortString(), err)
	}
}

// apiRejects is derpd_admission_rejects{reason}.
func apiRejects(t *testing.T, d *derpd, reason string) float64 {
	t.Helper()
	return mustMetric(t, d.varz(t), "derpd_admission_rejects", "reason", reason)
}

// apiWaitAtLeast polls name{kv} until it is >= want (or 15 s) and fails the
// test otherwise; it returns the value.
func apiWaitAtLeast(t *testing.T, d *derpd, want float64, what string, name string, kv ...string) float64 {
	t.Helper()
	v := d.waitMetric(t, 15*time.Second, func(v float64) bool { return v >= want }, name, kv...)
	if v < want {
		t.Errorf("%s: %s%v = %v, want >= %v", what, name, kv, v, want)
	}
	return v
}

// apiSyncsOK is derpd_admission_api_syncs{result="ok"}.
func apiSyncsOK(t *testing.T, d *derpd) float64 {
	t.Helper()
	return mustMetric(t, d.varz(t), "derpd_admission_api_syncs", "result", "ok")
}

// apiWaitNextSync waits until one more successful sync than now has happened.
func apiWaitNextSync(t *testing.T, d *derpd, what string) {
	t.Helper()
	apiWaitAtLeast(t, d, apiSyncsOK(t, d)+1, what, "derpd_admission_api_syncs", "result", "ok")
}

// apiWaitSyncAfterChange waits for two more successful syncs: the second
// was requested after the first ended, so after the caller changed the
// fake (one more could have been under way already, answered before the
// change).
func apiWaitSyncAfterChange(t *testing.T, d *derpd, what string) {
	t.Helper()
	apiWaitAtLeast(t, d, apiSyncsOK(t, d)+2, what, "derpd_admission_api_syncs", "result", "ok")
}

// apiNoSecret fails if any secret string appears in s.
func apiNoSecret(t *testing.T, where, s string, secrets ...string) {
	t.Helper()
	for _, sec := range secrets {
		if sec != "" && strings.Contains(s, sec) {
			t.Errorf("%s contains a secret (%.12s...)", where, sec)
		}
	}
}

// apiWantGauge waits (up to 5 s) for gauge name to equal want and fails the
// test if it does not. derpd counts a sync as ok a moment before its
// gauges show the new set, so a test reads them this way.
func apiWantGauge(t *testing.T, d *derpd, want float64, what, name string, kv ...string) {
	t.Helper()
	if v := d.waitMetric(t, 5*time.Second, func(v float64) bool { return v == want }, name, kv...); v != want {
		t.Errorf("%s: %s%v = %v, want %v", what, name, kv, v, want)
	}
}
