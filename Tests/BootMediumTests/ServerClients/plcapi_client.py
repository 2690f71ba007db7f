#!/usr/bin/env python3
"""Real clients of bootmedium-server for ServerTests: Python's xmlrpc.client, http.client and
curl, each check asserting what a PLCAPI client, a BMC or an operator relies on.

    plcapi_client.py CHECK URL [ARGS...]

URL is the server's base (http://127.0.0.1:PORT). Each check prints one JSON object with what it
measured on stdout and exits 0, or prints what went wrong on stderr and exits 1. The persons
are those ServerTests writes: admin@example.org/adminpw (admin), pi@site1.example.org/pipw (pi
of site 1), user@site1.example.org/userpw (user role only), off@example.org/offpw (disabled).
"""
import base64
import concurrent.futures
import hashlib
import http.client
import json
import os
import socket
import subprocess
import sys
import time
import urllib.parse
import xmlrpc.client

ADMIN = {"AuthMethod": "password", "Username": "admin@example.org", "AuthString": "adminpw"}
PI = {"AuthMethod": "password", "Username": "pi@site1.example.org", "AuthString": "pipw"}
USER = {"AuthMethod": "password", "Username": "user@site1.example.org", "AuthString": "userpw"}
DISABLED = {"AuthMethod": "password", "Username": "off@example.org", "AuthString": "offpw"}
WRONG = {"AuthMethod": "password", "Username": "admin@example.org", "AuthString": "nope"}
NODE1 = "node1.site1.demo.example.org"  # site 1
NODE2 = "node2.site2.demo.example.org"  # site 2


class Failure(Exception):
    pass


def check(condition, message):
    if not condition:
        raise Failure(message)


def proxy(base):
    return xmlrpc.client.ServerProxy(base + "/PLCAPI/", allow_none=True)


def fault(call):
    """Runs call, which must fault; returns (faultCode, faultString)."""
    try:
        call()
    except xmlrpc.client.Fault as f:
        return f.faultCode, f.faultString
    raise Failure("expected a fault")


def expect_fault(call, code, error):
    got_code, text = fault(call)
    check(got_code == code and ("error[%s]" % error) in text,
          "expected fault %d with error[%s], got %d %r" % (code, error, got_code, text))
    return text


def http_request(base, method, path, headers=None, body=None, timeout=60):
    u = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    conn.request(method, path, body=body, headers=headers or {})
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, data


# --- calls: every action, inline and filename modes, admin and non-admin, the documented errors


def check_calls(base, workdir, expected_preview_file):
    s = proxy(base)
    out = {}
    check(sorted(s.system.listMethods()) == ["GetBootMedium", "GetBootMediumURL", "system.listMethods",
                                             "system.methodHelp"], "system.listMethods")
    check("filename" in s.system.methodHelp("GetBootMedium"), "system.methodHelp")
    expected_preview = open(expected_preview_file).read()
    # node-preview: byte for byte the CLI's, by hostname and by node_id, admin and pi of its site
    for auth in (ADMIN, PI):
        check(s.GetBootMedium(auth, NODE1, "node-preview", "", []) == expected_preview, "node-preview differs from the CLI's")
        check(s.GetBootMedium(auth, 1, "node-preview", "") == expected_preview, "node-preview by node_id (4 arguments)")
    # node-floppy: the preview's lines after NODE_ID, NODE_KEY, KEY_RENEWAL_DATE
    floppy = s.GetBootMedium(ADMIN, NODE1, "node-floppy", "", [])
    lines = floppy.split("\n", 3)
    check(lines[0] == 'NODE_ID="1"' and lines[1].startswith('NODE_KEY="') and lines[3] == expected_preview,
          "node-floppy is not NODE_ID, NODE_KEY, KEY_RENEWAL_DATE + the preview: %r" % floppy[:200])
    out["floppy_bytes"] = len(floppy)
    # inline images: base64 strings that decode to the medium
    for action, options, magic_at, magic in (("node-iso", [], 0x8001, b"CD001"), ("node-usb", [], 0x1FE, b"\x55\xaa"),
                                             ("node-iso", ["serial"], 0x8001, b"CD001"),
                                             ("node-usb", ["partition"], 0x1FE, b"\x55\xaa"),
                                             ("node-iso", ["cramfs"], 0x8001, b"CD001"),
                                             ("generic-iso", [], 0x8001, b"CD001"), ("generic-usb", [], 0x1FE, b"\x55\xaa")):
        text = s.GetBootMedium(ADMIN, NODE1, action, "", options)
        check(isinstance(text, str), "%s inline is not a string" % action)
        image = base64.b64decode(text, validate=True)
        check(image[magic_at:magic_at + len(magic)] == magic, "%s %s inline: no %r at %#x" % (action, options, magic, magic_at))
        out["inline_%s%s_bytes" % (action, "_" + "_".join(options) if options else "")] = len(image)
    # filename mode: %d for a non-admin, any path for an admin
    path = s.GetBootMedium(PI, NODE1, "node-iso", "%d/%n-pi%s", [])
    check(path == workdir + "/" + NODE1 + "-pi.iso" and os.path.getsize(path) > 0, "pi's %%d file: %r" % path)
    admin_path = os.path.join(os.path.dirname(workdir), "admin-elsewhere.usb")
    check(s.GetBootMedium(ADMIN, NODE1, "node-usb", admin_path, []) == admin_path, "admin's path")
    check(s.GetBootMedium(ADMIN, NODE1, "node-floppy", "%d/%n%s", []).endswith(NODE1 + ".txt"), "node-floppy to a file")
    # the documented errors, each with PLCAPI's fault code and our stable error code
    expect_fault(lambda: s.GetBootMedium(WRONG, NODE1, "node-iso", "", []), 103, "authentication-failed")
    expect_fault(lambda: s.GetBootMedium(DISABLED, NODE1, "node-iso", "", []), 103, "authentication-failed")
    expect_fault(lambda: s.GetBootMedium(dict(ADMIN, Username="nobody@example.org"), NODE1, "node-iso", "", []), 103,
                 "authentication-failed")
    expect_fault(lambda: s.GetBootMedium(USER, NODE1, "node-preview", "", []), 103, "authentication-failed")
    expect_fault(lambda: s.GetBootMedium({"AuthMethod": "session", "session": "x"}, NODE1, "node-iso", "", []), 103,
                 "authentication-failed")
    expect_fault(lambda: s.GetBootMedium(PI, NODE2, "node-preview", "", []), 108, "permission-denied")
    expect_fault(lambda: s.GetBootMedium(PI, NODE1, "node-iso", "/tmp/outside-%n%s", []), 108, "output-outside-workdir")
    expect_fault(lambda: s.GetBootMedium(ADMIN, "no.such.node", "node-iso", "", []), 102, "unknown-node")
    expect_fault(lambda: s.GetBootMedium(ADMIN, "node4.peer7.example.net", "node-iso", "", []), 102, "not-local-node")
    expect_fault(lambda: s.GetBootMedium(ADMIN, NODE1, "node-bogus", "", []), 102, "unknown-action")
    expect_fault(lambda: s.GetBootMedium(ADMIN, NODE1, "node-iso", "", ["bogus"]), 102, "invalid-option")
    expect_fault(lambda: s.GetBootMedium(ADMIN, NODE1, "node-iso", "", ["serial:ttyS0;reboot"]), 102, "invalid-serial-spec")
    expect_fault(lambda: s.GetBootMedium(ADMIN, NODE1, "node-preview", "", ["serial"]), 102, "options-not-supported")
    expect_fault(lambda: s.GetBootMedium(ADMIN, NODE1, "node-iso", "", ["partition"]), 102, "invalid-option")
    expect_fault(lambda: s.GetBootMedium(ADMIN, NODE1, "node-iso", "%d/%x", []), 102, "invalid-output")
    expect_fault(lambda: s.GetBootMedium(PI, NODE1, "node-iso", "%d/%n-pi%s", []), 102, "output-exists")
    expect_fault(lambda: s.GetBootMedium(ADMIN, NODE1, "node-iso"), 101, "invalid-call")
    expect_fault(lambda: s.GetBootMedium(ADMIN, NODE1, 7, "", []), 102, "invalid-call")
    expect_fault(lambda: s.GetBootMedium(ADMIN, NODE1, "node-iso", "", "serial"), 102, "invalid-call")
    expect_fault(lambda: s.GetBootMedium(ADMIN, [1], "node-iso", "", []), 102, "invalid-call")
    expect_fault(lambda: s.NoSuchMethod(ADMIN), 100, "invalid-call")
    expect_fault(lambda: s.system.methodHelp("NoSuchMethod"), 100, "invalid-call")
    expect_fault(lambda: s.GetBootMediumURL(ADMIN, NODE1, "node-preview", []), 102, "not-supported")
    out["ok"] = True
    return out


# --- media by URL


def check_url(base, store_path, lifetime):
    s = proxy(base)
    r = s.GetBootMediumURL(ADMIN, NODE1, "node-iso", [])
    check(set(r) == {"url", "size", "sha256", "expires"}, "GetBootMediumURL's fields: %r" % r)
    check(r["url"].startswith(base + "/media/") and r["url"].endswith("/" + NODE1 + ".iso"), "url %r" % r["url"])
    check(abs(r["expires"] - time.time() - lifetime) < 30, "expires %r" % r["expires"])
    path = urllib.parse.urlsplit(r["url"]).path
    key_after_url = json.load(open(store_path))["nodes"][0]["key"]
    # HEAD
    status, h, body = http_request(base, "HEAD", path)
    check(status == 200 and body == b"" and int(h["content-length"]) == r["size"], "HEAD: %d %r" % (status, h))
    check(h["accept-ranges"] == "bytes" and h["etag"] == '"%s"' % r["sha256"] and "last-modified" in h, "HEAD headers %r" % h)
    # GET whole, twice: the same bytes
    status, h, whole = http_request(base, "GET", path)
    check(status == 200 and len(whole) == r["size"] and hashlib.sha256(whole).hexdigest() == r["sha256"], "GET whole")
    status, h, again = http_request(base, "GET", path)
    check(hashlib.sha256(again).hexdigest() == r["sha256"], "second download differs")
    # curl --range parts concatenate to the whole
    size = r["size"]
    cuts = [0, 1, 2047, 2048, 32769, size // 3, size // 2 + 7, size - 1, size]
    parts = b""
    for a, b in zip(cuts, cuts[1:]):
        if b <= a:
            continue
        part = subprocess.run(["curl", "-sf", "--range", "%d-%d" % (a, b - 1), r["url"]], check=True,
                              stdout=subprocess.PIPE).stdout
        check(len(part) == b - a, "curl --range %d-%d gave %d bytes" % (a, b - 1, len(part)))
        parts += part
    check(parts == whole, "the curl --range parts do not concatenate to the whole")
    # 206 headers, suffix and open ranges, 416, If-Range
    status, h, body = http_request(base, "GET", path, {"Range": "bytes=100-199"})
    check(status == 206 and body == whole[100:200] and h["content-range"] == "bytes 100-199/%d" % size, "206 %r" % h)
    status, h, body = http_request(base, "GET", path, {"Range": "bytes=-10"})
    check(status == 206 and body == whole[-10:], "suffix range")
    status, h, body = http_request(base, "GET", path, {"Range": "bytes=%d-" % (size - 5)})
    check(status == 206 and body == whole[-5:], "open range")
    status, h, body = http_request(base, "GET", path, {"Range": "bytes=%d-" % size})
    check(status == 416 and h["content-range"] == "bytes */%d" % size, "416: %d %r" % (status, h))
    status, h, body = http_request(base, "GET", path, {"Range": "bytes=0-9", "If-Range": '"%s"' % r["sha256"]})
    check(status == 206 and body == whole[:10], "If-Range matching")
    status, h, body = http_request(base, "GET", path, {"Range": "bytes=0-9", "If-Range": '"other"'})
    check(status == 200 and len(body) == size, "If-Range not matching must send the whole")
    status, h, body = http_request(base, "GET", path, {"Range": "bytes=0-1,5-6"})
    check(status == 200 and len(body) == size, "several ranges: the whole")
    # forged, altered, wrong name: 404
    token = path.split("/")[2]
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    for bad in ("/media/%s/%s.iso" % (forged, NODE1), "/media/%s/other.iso" % token, "/media/x.y/%s.iso" % NODE1,
                "/media/%s/%s.iso" % (token.split(".")[0] + "." + "A" * 43, NODE1)):
        status, _, _ = http_request(base, "GET", bad)
        check(status == 404, "%s gave %d" % (bad, status))
    # the key was renewed once, at URL creation: downloads changed nothing
    check(json.load(open(store_path))["nodes"][0]["key"] == key_after_url, "a download changed the node's key")
    # a generic medium by URL
    g = s.GetBootMediumURL(PI, NODE1, "generic-usb", [])
    status, _, gbody = http_request(base, "GET", urllib.parse.urlsplit(g["url"]).path)
    check(status == 200 and hashlib.sha256(gbody).hexdigest() == g["sha256"], "generic by URL")
    # expiry
    time.sleep(lifetime + 1.5)
    status, _, _ = http_request(base, "GET", path)
    check(status == 404, "an expired URL gave %d" % status)
    return {"size": size, "url": r["url"]}


# --- load


def check_load(base, outdir, count, nodes_path):
    s_calls = []

    def one(i):
        s = proxy(base)
        t = time.monotonic()
        path = s.GetBootMedium(ADMIN, NODE1, "node-iso", "%s/load-%d.iso" % (outdir, i), [])
        return path, time.monotonic() - t

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(count) as pool:
        results = list(pool.map(one, range(count)))
    wall = time.monotonic() - started
    paths = [p for p, _ in results]
    check(len(set(paths)) == count and all(os.path.getsize(p) > 0 for p in paths), "load outputs")
    latencies = sorted(t for _, t in results)
    return {"count": count, "wall_s": round(wall, 2), "median_s": round(latencies[count // 2], 3),
            "max_s": round(latencies[-1], 3), "paths": paths}


def check_mixed(base):
    """Different nodes, types and options at once (templates built in parallel, libisofs
    serialized inside): every medium by URL downloads to its SHA-256 and is its type."""
    nodes = ["node1.site1.demo.example.org", "node2.site2.demo.example.org", "node3.site1.demo.example.org",
             "node5.site2.demo.example.org"]
    kinds = [("node-iso", [], 0x8001, b"CD001"), ("node-usb", [], 0x1FE, b"\x55\xaa"), ("node-iso", ["serial"], 0x8001, b"CD001"),
             ("node-usb", ["partition"], 0x1FE, b"\x55\xaa"), ("node-iso", ["cramfs"], 0x8001, b"CD001"),
             ("node-usb", ["cramfs"], 0x1FE, b"\x55\xaa")]
    jobs = [(n, k) for n in nodes for k in kinds]

    def one(job):
        node, (action, options, at, magic) = job
        r = proxy(base).GetBootMediumURL(ADMIN, node, action, options)
        status, _, body = http_request(base, "GET", urllib.parse.urlsplit(r["url"]).path)
        return (status == 200 and hashlib.sha256(body).hexdigest() == r["sha256"] and body[at:at + len(magic)] == magic,
                node, action, options)

    with concurrent.futures.ThreadPoolExecutor(len(jobs)) as pool:
        results = list(pool.map(one, jobs))
    bad = [r[1:] for r in results if not r[0]]
    check(not bad, "media that are not what was asked: %r" % bad)
    return {"media": len(results)}


def check_renew_split(bases, node, count, outdir):
    """`count` concurrent node-iso calls for one node, spread over the servers `bases`."""
    servers = bases.split(",")

    def one(i):
        t = time.monotonic()
        path = proxy(servers[i % len(servers)]).GetBootMedium(ADMIN, node, "node-iso", "%s/split-%d.iso" % (outdir, i), [])
        return path, time.monotonic() - t

    t = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(count) as pool:
        results = list(pool.map(one, range(count)))
    # Renewals of one node are serialized by its row lock and each file is linked into place
    # before its key commits, so the files' change times are the commits' order.
    return {"paths": [p for p, _ in results], "ctimes": [os.stat(p).st_ctime_ns for p, _ in results],
            "wall_s": round(time.monotonic() - t, 3), "max_s": round(max(d for _, d in results), 3)}


def check_parallel_nodes(base, outdir, hosts):
    """The same node-iso call for each of `hosts`: one after the other, then all at once."""
    hosts = hosts.split(",")

    def one(args):
        i, host, tag = args
        t = time.monotonic()
        proxy(base).GetBootMedium(ADMIN, host, "node-iso", "%s/%s-%d.iso" % (outdir, tag, i), [])
        return time.monotonic() - t

    serial = [one((i, h, "serial")) for i, h in enumerate(hosts)]
    t = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(len(hosts)) as pool:
        list(pool.map(one, [(i, h, "parallel") for i, h in enumerate(hosts)]))
    wall = time.monotonic() - t
    return {"serial_sum_s": round(sum(serial), 3), "parallel_wall_s": round(wall, 3), "nodes": len(hosts)}


def check_one_call(base, node, action, filename):
    """One GetBootMedium call that may fail: its fault, or ok."""
    try:
        result = proxy(base).GetBootMedium(ADMIN, node, action, filename, [])
        return {"ok": True, "result": result[:200]}
    except xmlrpc.client.Fault as f:
        return {"ok": False, "faultCode": f.faultCode, "faultString": f.faultString}
    except OSError as e:
        return {"ok": False, "faultCode": 0, "faultString": "%s: %s" % (type(e).__name__, e)}


def check_busy(base, count):
    """With a tiny work queue, a burst gets 503 + Retry-After for some calls and answers the rest."""
    body = xmlrpc.client.dumps((ADMIN, NODE1, "node-iso", "", []), "GetBootMedium").encode()

    def one(_):
        status, h, data = http_request(base, "POST", "/PLCAPI/", {"Content-Type": "text/xml"}, body)
        return status, h.get("retry-after"), len(data)

    with concurrent.futures.ThreadPoolExecutor(count) as pool:
        results = list(pool.map(one, range(count)))
    busy = [r for r in results if r[0] == 503]
    ok = [r for r in results if r[0] == 200]
    check(busy and ok and len(busy) + len(ok) == count, "burst: %r" % [r[0] for r in results])
    check(all(r[1] == "5" for r in busy), "503 without Retry-After")
    return {"busy": len(busy), "ok": len(ok)}


def check_downloads(base, count):
    """Downloads per second of one medium by URL, `count` whole GETs from 8 clients."""
    r = proxy(base).GetBootMediumURL(ADMIN, NODE1, "node-iso", [])
    path = urllib.parse.urlsplit(r["url"]).path

    def one(_):
        status, _, data = http_request(base, "GET", path)
        return status == 200 and hashlib.sha256(data).hexdigest() == r["sha256"]

    t = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        oks = list(pool.map(one, range(count)))
    wall = time.monotonic() - t
    check(all(oks), "a download differed")
    return {"downloads": count, "per_second": round(count / wall, 1), "mib_per_second": round(count * r["size"] / wall / 2**20)}


# --- a client that goes away mid-download


def check_disconnect(base):
    r = proxy(base).GetBootMediumURL(ADMIN, NODE1, "node-iso", [])
    u = urllib.parse.urlsplit(r["url"])
    for _ in range(5):
        sock = socket.create_connection((u.hostname, u.port))
        sock.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % u.path).encode())
        got = 0
        while got < 1 << 20:
            chunk = sock.recv(65536)
            check(chunk, "the server closed early")
            got += len(chunk)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()  # RST mid-body
    time.sleep(1)
    status, _, data = http_request(base, "GET", u.path)
    check(status == 200 and hashlib.sha256(data).hexdigest() == r["sha256"], "the server is not well after disconnects")
    return {"disconnects": 5}


# --- SIGTERM during load: run calls until the server goes away


def check_sigterm_load(base, outdir, count):
    def one(i):
        try:
            return proxy(base).GetBootMedium(ADMIN, NODE1, "node-iso", "%s/term-%d.iso" % (outdir, i), [])
        except Exception as e:  # the server went away: refused, reset, or a fault
            return "error: %s" % type(e).__name__

    with concurrent.futures.ThreadPoolExecutor(count) as pool:
        results = list(pool.map(one, range(count)))
    return {"delivered": [r for r in results if not r.startswith("error")],
            "failed": len([r for r in results if r.startswith("error")])}


# --- hostile requests


def check_hostile(base):
    out = {}

    def post(body, headers=None, name=""):
        t = time.monotonic()
        h = {"Content-Type": "text/xml"}
        h.update(headers or {})
        try:
            status, rh, data = http_request(base, "POST", "/PLCAPI/", h, body, timeout=30)
        except (ConnectionResetError, BrokenPipeError):
            status, data = "reset", b""
        out[name] = {"status": status, "seconds": round(time.monotonic() - t, 3)}
        check(time.monotonic() - t < 20, "%s took %.1f s" % (name, time.monotonic() - t))
        return status, data

    def expect_fault_body(status, data, name):
        check(status == 200 and b"<fault>" in data and b"error[invalid-call]" in data, "%s: %r %r" % (name, status, data[:300]))

    call = lambda inner: ("<?xml version='1.0'?><methodCall><methodName>GetBootMedium</methodName><params>%s</params>"
                          "</methodCall>" % inner).encode()
    for name, body in (
        ("malformed", b"<methodCall><methodName>GetBootMedium</methodName><params><param>"),
        ("not-xml", b"\x00\xff garbage"),
        ("not-a-call", b"<?xml version='1.0'?><methodResponse/>"),
        ("billion-laughs", b"""<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">"""
                           + b"".join(b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i else b"&lol;") * 10)
                                      for i in range(1, 10))
                           + b"""]><methodCall><methodName>&lol9;</methodName></methodCall>"""),
        ("external-entity", b"""<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>"""
                            b"""<methodCall><methodName>&e;</methodName></methodCall>"""),
        ("utf16", "<?xml version='1.0' encoding='UTF-16'?><methodCall><methodName>x</methodName></methodCall>".encode("utf-16")),
        ("deep", call("<param><value>" + "<array><data><value>" * 10000 + "</value></data></array>" * 10000 + "</value></param>")),
        ("many-elements", call("<param><value><array><data>" + "<value/>" * 110000 + "</data></array></value></param>")),
        ("wrong-int", call("<param><value><int>one</int></value></param>")),
        ("unknown-type", call("<param><value><bignum>1</bignum></value></param>")),
        ("duplicate-member", call("<param><value><struct><member><name>a</name><value>1</value></member>"
                                  "<member><name>a</name><value>2</value></member></struct></value></param>")),
    ):
        status, data = post(body, name=name)
        expect_fault_body(status, data, name)
    # wrong types for a known method, unknown methods: PLCAPI's faults
    s = proxy(base)
    check(fault(lambda: s.GetBootMedium("admin", NODE1, "node-iso", "", []))[0] == 102, "auth as a string")
    check(fault(lambda: s.GetBootMedium(ADMIN, NODE1, "node-iso", "", [1, 2]))[0] == 102, "options of ints")
    check(fault(lambda: s.no.such.method())[0] == 100, "unknown method")
    # a huge base64 argument within the body bound: a fault; past it: 413
    status, data = post(call("<param><value><base64>%s</base64></value></param>"
                             % base64.b64encode(os.urandom(600 << 10)).decode()), name="base64-in-bound")
    check(status == 200 and b"<fault>" in data, "base64 in bound: %r" % status)
    status, _ = post(call("<param><value><base64>%s</base64></value></param>"
                          % base64.b64encode(os.urandom(16 << 20)).decode()), name="huge-base64")
    check(status in (413, "reset"), "huge base64: %r" % status)
    # a 100 MB body, declared and chunked (no length given): refused, read no further
    u = urllib.parse.urlsplit(base)
    for name, framing, piece in (
        ("100MB-declared", b"Content-Length: 100000000", b"<" * 0x100000),
        ("100MB-chunked", b"Transfer-Encoding: chunked", b"100000\r\n" + b"a" * 0x100000 + b"\r\n"),
    ):
        t = time.monotonic()
        sock = socket.create_connection((u.hostname, u.port))
        sock.settimeout(20)
        sock.sendall(b"POST /PLCAPI/ HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\n" + framing + b"\r\n\r\n")
        sent = 0
        try:
            while sent < 100_000_000:
                sock.sendall(piece)
                sent += 0x100000
        except (ConnectionResetError, BrokenPipeError, socket.timeout):
            pass
        try:
            reply = sock.recv(4096)
            status = int(reply.split(b" ")[1]) if reply.startswith(b"HTTP/1.1") else reply[:40]
        except (ConnectionResetError, socket.timeout, IndexError, ValueError):
            status = "reset"
        sock.close()
        out[name] = {"status": status, "sent_mib": sent >> 20, "seconds": round(time.monotonic() - t, 3)}
        check(status in (413, "reset"), "%s: %r" % (name, status))
    # still answering
    check("GetBootMedium" in s.system.listMethods(), "the server stopped answering")
    return out


def main(argv):
    name, base, rest = argv[0], argv[1], argv[2:]
    try:
        if name == "calls":
            result = check_calls(base, rest[0], rest[1])
        elif name == "url":
            result = check_url(base, rest[0], float(rest[1]))
        elif name == "load":
            result = check_load(base, rest[0], int(rest[1]), None)
        elif name == "renew-split":
            result = check_renew_split(base, rest[0], int(rest[1]), rest[2])
        elif name == "parallel-nodes":
            result = check_parallel_nodes(base, rest[0], rest[1])
        elif name == "one-call":
            result = check_one_call(base, rest[0], rest[1], rest[2] if len(rest) > 2 else "")
        elif name == "mixed":
            result = check_mixed(base)
        elif name == "busy":
            result = check_busy(base, int(rest[0]))
        elif name == "downloads":
            result = check_downloads(base, int(rest[0]))
        elif name == "disconnect":
            result = check_disconnect(base)
        elif name == "sigterm-load":
            result = check_sigterm_load(base, rest[0], int(rest[1]))
        elif name == "hostile":
            result = check_hostile(base)
        else:
            sys.stderr.write("unknown check %s\n" % name)
            return 2
    except (Failure, xmlrpc.client.Fault, OSError, subprocess.CalledProcessError) as e:
        sys.stderr.write("%s: FAIL: %s: %s\n" % (name, type(e).__name__, e))
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
