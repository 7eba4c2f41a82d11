/* SPDX-License-Identifier: ISC */
/*
 * fuzz_ws.c: a client's wire bytes through the WebSocket layer (ws.c,
 * libwslay) into the DERP frame reader, as io.c feeds them: one shot and
 * split at fuzz-chosen points must give the same stream and verdict.
 */
#include <event2/buffer.h>

#include "frame.h"
#include "fuzz.h"
#include "ws.h"

/* Decode data in pieces of at most step bytes; the payload into in. */
static enum ws_status
decode(const uint8_t *data, size_t size, size_t step, struct ws *ws,
    struct evbuffer *in)
{
	enum ws_status	 st = WS_OK;
	size_t		 off = 0, n, added;

	while (off < size) {
		n = size - off < step ? size - off : step;
		st = ws_recv(ws, data + off, n, in, &added);
		FUZZ_ASSERT(added <= n);
		if (st != WS_OK) {
			/* Over: nothing more is taken. */
			FUZZ_ASSERT(ws_recv(ws, data, size, in, &added) == st);
			FUZZ_ASSERT(added == 0);
			break;
		}
		off += n;
	}
	return st;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ws	*a, *b;
	struct evbuffer	*ina, *inb, *out;
	enum ws_status	 sa, sb;
	size_t		 step, la, lb;
	uint8_t		 hdr[FRAME_HDR_LEN], type;
	uint32_t	 len;

	if (size < 1)
		return 0;
	step = (size_t)data[0] % 61 + 1;
	data++;
	size--;
	if ((a = ws_new()) == NULL || (b = ws_new()) == NULL ||
	    (ina = evbuffer_new()) == NULL || (inb = evbuffer_new()) == NULL ||
	    (out = evbuffer_new()) == NULL)
		abort();
	sa = decode(data, size, size > 0 ? size : 1, a, ina);
	sb = decode(data, size, step, b, inb);
	/*
	 * wslay checks a close frame's UTF-8 reason per read, not per frame,
	 * so how reads split one can turn it into a protocol error (1007)
	 * or not: either way the stream before it is the same and ends.
	 */
	FUZZ_ASSERT(sa == sb || sa == WS_PROTOCOL || sb == WS_PROTOCOL);
	la = evbuffer_get_length(ina);
	lb = evbuffer_get_length(inb);
	FUZZ_ASSERT(la == lb && la <= size);
	if (la > 0)
		FUZZ_ASSERT(memcmp(evbuffer_pullup(ina, -1),
		    evbuffer_pullup(inb, -1), la) == 0);

	/* The DERP reader's first steps on the stream: headers, lengths. */
	while (evbuffer_copyout(ina, hdr, sizeof(hdr)) == sizeof(hdr)) {
		frame_get_header(hdr, sizeof(hdr), &type, &len);
		if (evbuffer_get_length(ina) < FRAME_HDR_LEN + (size_t)len)
			break;
		evbuffer_drain(ina, FRAME_HDR_LEN + (size_t)len);
	}

	/* Echo the stream back: framing stays within its bound. */
	evbuffer_add_buffer(out, inb);
	FUZZ_ASSERT(ws_encode(b, out, sb != WS_OK) == 0);
	FUZZ_ASSERT(evbuffer_get_length(ws_wire(b)) <= WS_WIRE_HIGH +
	    WS_OUT_MSG + (WS_MAX_PONGS + 1) * 140);

	ws_free(a);
	ws_free(b);
	evbuffer_free(ina);
	evbuffer_free(inb);
	evbuffer_free(out);
	return 0;
}
