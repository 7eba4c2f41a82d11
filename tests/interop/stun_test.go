package interop

// Port of stunserver TestSTUNServer (black box) plus a hand-built RFC 5389
// binding request.

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"tailscale.com/net/stun"
)

func stunRoundTrip(t *testing.T, conn *net.UDPConn, req []byte, timeout time.Duration) ([]byte, error) {
	t.Helper()
	if _, err := conn.Write(req); err != nil {
		t.Fatalf("STUN write: %v", err)
	}
	conn.SetReadDeadline(time.Now().Add(timeout))
	buf := make([]byte, 1500)
	n, err := conn.Read(buf)
	if err != nil {
		return nil, err
	}
	return buf[:n], nil
}

func dialSTUN(t *testing.T, d *derpd) (*net.UDPConn, netip.AddrPort) {
	t.Helper()
	ra, err := net.ResolveUDPAddr("udp4", d.STUNAddr)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}, ra)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn, localAddrPort(t, conn.LocalAddr())
}

func TestSTUN(t *testing.T) {
	d := startDerpd(t, derpdOpts{})
	conn, local := dialSTUN(t, d)

	t.Run("tailscale request", func(t *testing.T) {
		for i := 0; i < 3; i++ {
			txid := stun.NewTxID()
			resp, err := stunRoundTrip(t, conn, stun.Request(txid), 2*time.Second)
			if err != nil {
				t.Fatalf("no STUN response to a Tailscale binding request: %v", err)
			}
			if !stun.Is(resp) {
				t.Fatalf("response is not STUN: % x", resp)
			}
			gotTx, addr, err := stun.ParseResponse(resp)
			if err != nil {
				t.Fatalf("ParseResponse: %v (% x)", err, resp)
			}
			if gotTx != txid {
				t.Fatalf("response txid % x, want % x", gotTx, txid)
			}
			if addr.Addr().Unmap() != local.Addr() || addr.Port() != local.Port() {
				t.Fatalf("mapped address %v, want %v", addr, local)
			}
			checkXORMapped(t, resp, txid, local)
		}
	})

	t.Run("plain RFC 5389 request", func(t *testing.T) {
		// 20-byte header only: Binding Request, length 0, magic cookie, txid;
		// no SOFTWARE, no FINGERPRINT.
		var txid [12]byte
		rand.Read(txid[:])
		req := []byte{0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42}
		req = append(req, txid[:]...)
		resp, err := stunRoundTrip(t, conn, req, 2*time.Second)
		if err != nil {
			t.Fatalf("no STUN response to a plain RFC 5389 binding request: %v", err)
		}
		checkXORMapped(t, resp, txid, local)
	})

	t.Run("garbage ignored", func(t *testing.T) {
		for _, junk := range [][]byte{
			[]byte("hello"),
			bytes.Repeat([]byte{0xff}, 40),
			{0x00, 0x01, 0x00, 0x00, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, // wrong cookie
		} {
			if resp, err := stunRoundTrip(t, conn, junk, 300*time.Millisecond); err == nil {
				t.Errorf("got a reply % x to non-STUN packet % x", resp, junk)
			}
		}
		// Still answering afterwards.
		txid := stun.NewTxID()
		resp, err := stunRoundTrip(t, conn, stun.Request(txid), 2*time.Second)
		if err != nil {
			t.Fatalf("no STUN response after garbage: %v", err)
		}
		if gotTx, _, err := stun.ParseResponse(resp); err != nil || gotTx != txid {
			t.Fatalf("ParseResponse after garbage: %v, txid match %v", err, gotTx == txid)
		}
	})

	t.Run("many clients", func(t *testing.T) {
		for i := 0; i < 20; i++ {
			c, l := dialSTUN(t, d)
			txid := stun.NewTxID()
			resp, err := stunRoundTrip(t, c, stun.Request(txid), 2*time.Second)
			if err != nil {
				t.Fatalf("client %d: %v", i, err)
			}
			gotTx, addr, err := stun.ParseResponse(resp)
			if err != nil || gotTx != txid || addr.Port() != l.Port() {
				t.Fatalf("client %d: txid ok=%v addr %v want %v err %v", i, gotTx == txid, addr, l, err)
			}
			c.Close()
		}
	})
}

// checkXORMapped verifies a Binding Success response for txid that carries
// an XOR-MAPPED-ADDRESS attribute equal to want.
func checkXORMapped(t *testing.T, resp []byte, txid [12]byte, want netip.AddrPort) {
	t.Helper()
	if len(resp) < 20 {
		t.Fatalf("STUN response too short: % x", resp)
	}
	if typ := binary.BigEndian.Uint16(resp[0:2]); typ != 0x0101 {
		t.Fatalf("STUN response type %#04x, want 0x0101 (Binding Success)", typ)
	}
	if !bytes.Equal(resp[4:8], []byte{0x21, 0x12, 0xa4, 0x42}) {
		t.Fatalf("STUN response cookie % x", resp[4:8])
	}
	if !bytes.Equal(resp[8:20], txid[:]) {
		t.Fatalf("STUN response txid % x, want % x", resp[8:20], txid)
	}
	mlen := int(binary.BigEndian.Uint16(resp[2:4]))
	if 20+mlen != len(resp) {
		t.Fatalf("STUN header length %d, but %d attribute bytes follow", mlen, len(resp)-20)
	}
	attrs := resp[20:]
	found := false
	for len(attrs) >= 4 {
		at := binary.BigEndian.Uint16(attrs[0:2])
		al := int(binary.BigEndian.Uint16(attrs[2:4]))
		if 4+al > len(attrs) {
			t.Fatalf("truncated STUN attribute %#04x", at)
		}
		v := attrs[4 : 4+al]
		if at == 0x0020 {
			found = true
			if len(v) < 4 {
				t.Fatalf("XOR-MAPPED-ADDRESS too short")
			}
			port := binary.BigEndian.Uint16(v[2:4]) ^ 0x2112
			var ip netip.Addr
			switch v[1] {
			case 0x01:
				if len(v) != 8 {
					t.Fatalf("IPv4 XOR-MAPPED-ADDRESS len %d", len(v))
				}
				var a [4]byte
				for i := range a {
					a[i] = v[4+i] ^ []byte{0x21, 0x12, 0xa4, 0x42}[i]
				}
				ip = netip.AddrFrom4(a)
			case 0x02:
				if len(v) != 20 {
					t.Fatalf("IPv6 XOR-MAPPED-ADDRESS len %d", len(v))
				}
				key := append([]byte{0x21, 0x12, 0xa4, 0x42}, txid[:]...)
				var a [16]byte
				for i := range a {
					a[i] = v[4+i] ^ key[i]
				}
				ip = netip.AddrFrom16(a).Unmap()
			default:
				t.Fatalf("XOR-MAPPED-ADDRESS family %#x", v[1])
			}
			if got := netip.AddrPortFrom(ip, port); got != want {
				t.Fatalf("XOR-MAPPED-ADDRESS %v, want %v", got, want)
			}
		}
		pad := (4 - al%4) % 4
		if 4+al+pad > len(attrs) {
			break
		}
		attrs = attrs[4+al+pad:]
	}
	if !found {
		t.Fatalf("STUN response has no XOR-MAPPED-ADDRESS (0x0020): % x", resp)
	}
}
