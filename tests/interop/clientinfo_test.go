package interop

// Hand-sealed ClientInfo frames (derp TestClientInfoUnmarshal, black box):
// case-insensitive JSON keys, mesh key format validation, and handshake
// failures that must close the connection without ServerInfo.

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"go4.org/mem"
	"golang.org/x/crypto/nacl/box"
	"tailscale.com/derp"
	"tailscale.com/types/key"
)

type handshakeOutcome struct {
	accepted   bool
	serverInfo map[string]any // decrypted ServerInfo JSON when accepted
	rc         *rawConn
	pub        key.NodePublic
	closedErr  error
}

// rawHandshake performs the DERP handshake by hand: it reads the ServerKey
// frame, then sends a ClientInfo frame built by build (which gets the server
// key and fresh client keys and returns the frame type and payload). It
// reports whether the server answered with ServerInfo or closed the
// connection.
func rawHandshake(t *testing.T, d *derpd, build func(serverPub, clientPub, clientPriv *[32]byte) (derp.FrameType, []byte)) handshakeOutcome {
	t.Helper()
	rc := d.dialRaw(t)
	rc.SetDeadline(time.Now().Add(10 * time.Second))
	typ, n, err := derp.ReadFrameHeader(rc.brw.Reader)
	if err != nil {
		t.Fatalf("reading ServerKey frame header: %v", err)
	}
	if typ != derp.FrameServerKey || n < 40 || n > 1024 {
		t.Fatalf("first frame type %#x len %d, want ServerKey with 40..1024 bytes", typ, n)
	}
	sk := make([]byte, n)
	if _, err := io.ReadFull(rc.brw.Reader, sk); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(sk[:8], []byte("DERP\xf0\x9f\x94\x91")) {
		t.Fatalf("ServerKey magic % x", sk[:8])
	}
	var serverPub [32]byte
	copy(serverPub[:], sk[8:40])
	if got := key.NodePublicFromRaw32(mem.B(serverPub[:])); got != d.ServerKey {
		t.Fatalf("ServerKey %v, want %v", got, d.ServerKey)
	}
	clientPub, clientPriv, err := box.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ftyp, payload := build(&serverPub, clientPub, clientPriv)
	if err := derp.WriteFrame(rc.brw.Writer, ftyp, payload); err != nil {
		t.Fatal(err)
	}
	if err := rc.brw.Flush(); err != nil {
		t.Fatal(err)
	}
	out := handshakeOutcome{rc: rc, pub: key.NodePublicFromRaw32(mem.B(clientPub[:]))}
	rc.SetDeadline(time.Now().Add(5 * time.Second))
	typ, n, err = derp.ReadFrameHeader(rc.brw.Reader)
	if err != nil {
		var ne interface{ Timeout() bool }
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("server neither answered nor closed within 5s after ClientInfo")
		}
		out.closedErr = err
		return out
	}
	if typ != derp.FrameServerInfo {
		t.Fatalf("after ClientInfo got frame type %#x (len %d), want ServerInfo (0x03) or connection close", typ, n)
	}
	if n < 24+box.Overhead || n > 1<<20 {
		t.Fatalf("ServerInfo length %d out of range", n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(rc.brw.Reader, b); err != nil {
		t.Fatal(err)
	}
	var nonce [24]byte
	copy(nonce[:], b[:24])
	plain, ok := box.Open(nil, b[24:], &nonce, &serverPub, clientPriv)
	if !ok {
		t.Fatalf("ServerInfo box does not open with (server key, our key)")
	}
	out.accepted = true
	if err := json.Unmarshal(plain, &out.serverInfo); err != nil {
		t.Fatalf("ServerInfo plaintext %q is not JSON: %v", plain, err)
	}
	rc.SetDeadline(time.Time{})
	return out
}

// sealedClientInfo returns a builder for a correctly sealed ClientInfo with
// the given plaintext.
func sealedClientInfo(plain string) func(sp, cp, cs *[32]byte) (derp.FrameType, []byte) {
	return func(serverPub, clientPub, clientPriv *[32]byte) (derp.FrameType, []byte) {
		var nonce [24]byte
		rand.Read(nonce[:])
		p := append([]byte{}, clientPub[:]...)
		p = append(p, nonce[:]...)
		p = box.Seal(p, []byte(plain), &nonce, serverPub, clientPriv)
		return derp.FrameClientInfo, p
	}
}

// readUntilFrame reads frames until one of type want arrives (returning its
// payload) or the connection fails/times out.
func readUntilFrame(rc *rawConn, want derp.FrameType, timeout time.Duration) ([]byte, error) {
	rc.SetReadDeadline(time.Now().Add(timeout))
	defer rc.SetReadDeadline(time.Time{})
	for {
		typ, n, err := derp.ReadFrameHeader(rc.brw.Reader)
		if err != nil {
			return nil, err
		}
		if n > 1<<20 {
			return nil, fmt.Errorf("frame too large: %d", n)
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(rc.brw.Reader, b); err != nil {
			return nil, err
		}
		if typ == want {
			return b, nil
		}
	}
}

func TestClientInfo(t *testing.T) {
	d := startDerpd(t, derpdOpts{Mesh: true, NoSTUN: true})
	good := d.MeshKeyHex

	t.Run("accepted", func(t *testing.T) {
		for _, plain := range []string{
			`{"version":2,"CanAckPings":true}`,
			`{}`,
			`{"Version":2,"canackpings":false,"IsProber":true}`,
			`{"version":2,"CanAckPings":true,"AppName":"interop","SomethingNew":[1,{"x":null}]}`,
		} {
			out := rawHandshake(t, d, sealedClientInfo(plain))
			if !out.accepted {
				t.Errorf("ClientInfo %s: connection closed (%v), want ServerInfo", plain, out.closedErr)
				continue
			}
			if v, _ := out.serverInfo["version"].(float64); v != 2 {
				t.Errorf("ServerInfo JSON %v: want \"version\":2", out.serverInfo)
			}
			out.rc.Close()
		}
	})

	// Mesh key accepted under any key-name casing and hex casing: the
	// client is then a mesh peer (WatchConns yields PeerPresent for itself
	// with the mesh flag instead of closing the connection).
	t.Run("mesh key casing", func(t *testing.T) {
		for _, plain := range []string{
			`{"meshKey":"` + good + `","version":2,"CanAckPings":false}`,
			`{"MeshKey":"` + good + `","Version":2}`,
			`{"MESHKEY":"` + good + `"}`,
			`{"meshKey":"` + strings.ToUpper(good) + `"}`,
		} {
			out := rawHandshake(t, d, sealedClientInfo(plain))
			if !out.accepted {
				t.Errorf("ClientInfo %s: connection closed (%v), want ServerInfo", plain, out.closedErr)
				continue
			}
			if err := derp.WriteFrame(out.rc.brw.Writer, derp.FrameWatchConns, nil); err != nil {
				t.Fatal(err)
			}
			out.rc.brw.Flush()
			found := false
			for !found {
				b, err := readUntilFrame(out.rc, derp.FramePeerPresent, 5*time.Second)
				if err != nil {
					t.Errorf("ClientInfo %s: after WatchConns: %v (want PeerPresent; was the mesh key ignored?)", plain, err)
					break
				}
				if len(b) < 51 {
					t.Errorf("PeerPresent frame of %d bytes, want 51", len(b))
					break
				}
				if key.NodePublicFromRaw32(mem.B(b[:32])) == out.pub {
					found = true
					if b[50] != byte(derp.PeerPresentIsMeshPeer) {
						t.Errorf("ClientInfo %s: own PeerPresent flags %#x, want 0x02", plain, b[50])
					}
					ip := b[32:48]
					if !bytes.Equal(ip, []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1}) && !bytes.Equal(ip[:4], []byte{127, 0, 0, 1}) {
						t.Errorf("PeerPresent IP bytes % x, want ::ffff:127.0.0.1", ip)
					}
					if port := binary.BigEndian.Uint16(b[48:50]); port != localAddrPort(t, out.rc.LocalAddr()).Port() {
						t.Errorf("PeerPresent port %d, want our local port %v", port, out.rc.LocalAddr())
					}
				}
			}
			out.rc.Close()
		}
	})

	t.Run("rejected", func(t *testing.T) {
		zeroHex := strings.Repeat("0", 64)
		cases := []struct {
			name  string
			build func(sp, cp, cs *[32]byte) (derp.FrameType, []byte)
		}{
			{"mesh key 63 hex", sealedClientInfo(`{"version":2,"meshKey":"` + good[:63] + `"}`)},
			{"mesh key 65 hex", sealedClientInfo(`{"version":2,"meshKey":"` + good + `0"}`)},
			{"mesh key 66 hex", sealedClientInfo(`{"version":2,"meshKey":"` + good + `00"}`)},
			{"mesh key empty", sealedClientInfo(`{"version":2,"meshKey":""}`)},
			{"mesh key null", sealedClientInfo(`{"version":2,"meshKey":null}`)},
			{"mesh key non-hex", sealedClientInfo(`{"version":2,"meshKey":"` + good[:62] + `zz"}`)},
			{"mesh key number", sealedClientInfo(`{"version":2,"meshKey":12}`)},
			{"MeshKey 63 hex", sealedClientInfo(`{"MeshKey":"` + zeroHex[:63] + `"}`)},
			{"not json", sealedClientInfo(`hello`)},
			{"json array", sealedClientInfo(`[1,2]`)},
			{"bad MAC", func(sp, cp, cs *[32]byte) (derp.FrameType, []byte) {
				typ, p := sealedClientInfo(`{"version":2}`)(sp, cp, cs)
				p[32+24] ^= 0x80
				return typ, p
			}},
			{"sealed to wrong server key", func(sp, cp, cs *[32]byte) (derp.FrameType, []byte) {
				other, _, _ := box.GenerateKey(rand.Reader)
				return sealedClientInfo(`{"version":2}`)(other, cp, cs)
			}},
			{"too short", func(sp, cp, cs *[32]byte) (derp.FrameType, []byte) {
				return derp.FrameClientInfo, append(append([]byte{}, cp[:]...), make([]byte, 23)...)
			}},
			{"wrong first frame type", func(sp, cp, cs *[32]byte) (derp.FrameType, []byte) {
				_, p := sealedClientInfo(`{"version":2}`)(sp, cp, cs)
				return derp.FrameSendPacket, p
			}},
			{"zero client key", func(sp, cp, cs *[32]byte) (derp.FrameType, []byte) {
				// Seal with the shared key a server computes for an all-zero
				// peer key (X25519 with the zero point is zero).
				var zero [32]byte
				var shared [32]byte
				box.Precompute(&shared, &zero, cs)
				var nonce [24]byte
				rand.Read(nonce[:])
				p := append(make([]byte, 32), nonce[:]...)
				p = box.SealAfterPrecomputation(p, []byte(`{"version":2}`), &nonce, &shared)
				return derp.FrameClientInfo, p
			}},
		}
		for _, tc := range cases {
			out := rawHandshake(t, d, tc.build)
			if out.accepted {
				t.Errorf("%s: server sent ServerInfo, want the connection closed without it", tc.name)
			}
			out.rc.Close()
		}
	})

	d.requireAlive(t)
	c := d.newClient(t, "after", key.NewNode())
	m := startRecv(t, "after", c)
	m.expectServerInfo(t)
}
