#!/usr/bin/env python3
"""Minimal headless-Chromium driver over the Chrome DevTools Protocol (CDP).

Used by the trace tooling to open generated HTML pages, poke at them (keys,
clicks, JS) and take screenshots. It talks CDP over ``--remote-debugging-pipe``
instead of a websocket: Chromium reads NUL-terminated JSON commands from fd 3
and writes NUL-terminated JSON replies/events to fd 4. That transport needs
nothing beyond the standard library (no websocket client, no pip packages).

    with Browser(width=1280, height=900) as b:
        b.open("file:///tmp/x/page.html")
        print(b.evaluate("document.title"), b.console_errors())

Self-test: ``python3 Scripts/trace/browser.py --self-test``.
"""
import base64, collections, fcntl, json, os, select, shutil, signal, subprocess, sys, tempfile, time

# key name -> (code, windowsVirtualKeyCode, text)
_KEYS = {"ArrowLeft": ("ArrowLeft", 37, ""), "ArrowUp": ("ArrowUp", 38, ""),
         "ArrowRight": ("ArrowRight", 39, ""), "ArrowDown": ("ArrowDown", 40, ""),
         "Home": ("Home", 36, ""), "End": ("End", 35, ""), "PageUp": ("PageUp", 33, ""),
         "PageDown": ("PageDown", 34, ""), "Enter": ("Enter", 13, "\r"), "Tab": ("Tab", 9, ""),
         "Escape": ("Escape", 27, ""), "Backspace": ("Backspace", 8, ""),
         "Delete": ("Delete", 46, ""), " ": ("Space", 32, " ")}


def _find_browser():
    for cand in ("/usr/bin/chromium-headless-shell", shutil.which("chromium-headless-shell"),
                 shutil.which("chromium")):
        if cand and os.access(cand, os.X_OK):
            return cand
    raise RuntimeError("browser not found: need /usr/bin/chromium-headless-shell or chromium on PATH")


class Browser:
    """One headless Chromium process with one page target, driven over a CDP pipe."""

    def __init__(self, width=1280, height=900, timeout=30.0, executable=None):
        self.timeout = timeout
        self._next_id, self._buf, self._errors = 0, b"", []
        self._events = collections.deque(maxlen=1000)
        exe = executable or _find_browser()
        self._profile = tempfile.mkdtemp(prefix="cdp-profile-")
        self._log = open(os.path.join(self._profile, "stderr.log"), "w+b")
        cmd_r, cmd_w = os.pipe()          # we write commands -> browser fd 3
        rep_r, rep_w = os.pipe()          # browser fd 4 -> we read replies
        # park the child's ends above fd 4 so the dup2s in the child cannot clobber each other
        hi_r, hi_w = (fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 5) for fd in (cmd_r, rep_w))

        def child_fds():                  # runs in the child before exec
            os.dup2(hi_r, 3); os.dup2(hi_w, 4)
        args = [exe, "--headless", "--remote-debugging-pipe", "--no-sandbox", "--disable-gpu",
                "--user-data-dir=" + self._profile, "--no-first-run", "--hide-scrollbars",
                "--mute-audio", "--disable-dev-shm-usage", "about:blank"]
        self._out, self._in, self._proc, self._session = cmd_w, rep_r, None, None
        try:
            try:  # new session: the Debian wrapper is a shell script, so close() kills the group
                self._proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self._log,
                                              stderr=self._log, pass_fds=(3, 4), preexec_fn=child_fds,
                                              start_new_session=True)
            except OSError as e:
                raise RuntimeError("cannot start browser %s: %s" % (exe, e)) from None
            finally:
                for fd in (cmd_r, rep_w, hi_r, hi_w):
                    os.close(fd)
            tid = self._call("Target.createTarget", {"url": "about:blank"}, session=False)["targetId"]
            self._session = self._call("Target.attachToTarget", {"targetId": tid, "flatten": True},
                                       session=False)["sessionId"]
            for dom in ("Page.enable", "Runtime.enable"):
                self._call(dom)
            self._call("Emulation.setDeviceMetricsOverride",
                       {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
            self._call("Emulation.setFocusEmulationEnabled", {"enabled": True})
        except BaseException:
            self.close()
            raise

    # ---- transport -------------------------------------------------------
    def _died(self):
        self._log.flush(); self._log.seek(0)
        tail = self._log.read().decode("utf-8", "replace").strip().splitlines()[-5:]
        msg = "browser exited (code %s)" % self._proc.poll()
        return RuntimeError(msg + ("; stderr: " + " | ".join(tail) if tail else ""))

    def _pump(self, wait):
        """Read whatever is available (waiting up to `wait` s); dispatch complete messages."""
        if not select.select([self._in], [], [], max(wait, 0))[0]:
            return []
        chunk = os.read(self._in, 1 << 20)
        if not chunk:                     # EOF on fd 4: the browser is gone (or going)
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            raise self._died()
        *msgs, self._buf = (self._buf + chunk).split(b"\0")
        out = []
        for raw in msgs:
            msg = json.loads(raw)
            if "id" in msg:
                out.append(msg)
            else:
                self._on_event(msg)
        return out

    def _on_event(self, msg):
        method, p = msg.get("method"), msg.get("params", {})
        if method == "Runtime.consoleAPICalled" and p.get("type") == "error":
            self._errors.append("console.error: " + " ".join(
                str(a.get("value", a.get("description", a.get("type")))) for a in p.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            self._errors.append("uncaught exception: " + d.get("exception", {}).get("description", d.get("text", "?")))
        elif method == "Inspector.targetCrashed":
            self._errors.append("page crashed")
        self._events.append(msg)

    def _call(self, method, params=None, session=True, timeout=None):
        if self._proc is None:
            raise RuntimeError("browser is closed")
        self._next_id += 1
        msg = {"id": self._next_id, "method": method, "params": params or {}}
        if session and self._session:
            msg["sessionId"] = self._session
        data = json.dumps(msg).encode() + b"\0"
        try:
            while data:
                data = data[os.write(self._out, data):]
        except BrokenPipeError:
            raise self._died() from None
        deadline = time.monotonic() + (timeout or self.timeout)
        while time.monotonic() < deadline:
            for reply in self._pump(deadline - time.monotonic()):
                if reply["id"] == msg["id"]:
                    if "error" in reply:
                        raise RuntimeError("%s failed: %s" % (method, reply["error"].get("message")))
                    return reply.get("result", {})
        raise TimeoutError("timeout waiting for reply to %s after %.0f s" % (method, timeout or self.timeout))

    # ---- public API ------------------------------------------------------
    def open(self, url, timeout=None):
        """Navigate the page to `url` and wait for Page.loadEventFired (TimeoutError otherwise)."""
        timeout = timeout or self.timeout
        self._events.clear(); self._errors.clear()
        res = self._call("Page.navigate", {"url": url}, timeout=timeout)
        if res.get("errorText"):
            raise RuntimeError("navigation to %s failed: %s" % (url, res["errorText"]))
        if "loaderId" not in res:         # same-document navigation (#fragment): no load event
            return
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == "Page.loadEventFired" for e in self._events):
            if time.monotonic() >= deadline:
                raise TimeoutError("timeout waiting for load event of %s after %.0f s" % (url, timeout))
            self._pump(deadline - time.monotonic())

    def evaluate(self, expression, timeout=None):
        """Evaluate JS in the page (promises awaited); return its JSON value, RuntimeError if it threw."""
        res = self._call("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                              "awaitPromise": True}, timeout=timeout)
        if "exceptionDetails" in res:
            d = res["exceptionDetails"]
            raise RuntimeError("JS error: " + d.get("exception", {}).get("description", d.get("text", "?")))
        return res.get("result", {}).get("value")

    def press(self, key):
        """Send keyDown+keyUp for a named key (ArrowLeft, Enter, Escape, ...) or one printable char."""
        if key in _KEYS:
            code, vk, text = _KEYS[key]
        elif len(key) == 1 and key.isprintable():
            text, up = key, key.upper()
            code = "Key" + up if up.isalpha() and up.isascii() else "Digit" + key if key.isdigit() else ""
            vk = ord(up) if up.isascii() and up.isalnum() else 0
        else:
            raise ValueError("press: unsupported key %r" % key)
        mods = 8 if len(key) == 1 and key.isupper() else 0   # Shift for capitals
        ev = {"key": key, "code": code, "windowsVirtualKeyCode": vk, "nativeVirtualKeyCode": vk, "modifiers": mods}
        self._call("Input.dispatchKeyEvent", dict(ev, type="keyDown" if text else "rawKeyDown",
                                                  text=text, unmodifiedText=text))
        self._call("Input.dispatchKeyEvent", dict(ev, type="keyUp"))

    def _rect(self, selector):
        r = self.evaluate("(() => { const e = document.querySelector(%s); if (!e) return null;"
                          " e.scrollIntoView({block: 'center', inline: 'center'});"
                          " const r = e.getBoundingClientRect(); return {x: r.left, y: r.top,"
                          " w: r.width, h: r.height, sx: scrollX, sy: scrollY}; })()" % json.dumps(selector))
        if r is None:
            raise RuntimeError("no element matches selector %r" % selector)
        if not (r["w"] > 0 and r["h"] > 0):
            raise RuntimeError("element %r has no size (hidden or empty?)" % selector)
        return r

    def click(self, selector):
        """Scroll the element matching `selector` into view and left-click its centre."""
        r = self._rect(selector)
        x, y = r["x"] + r["w"] / 2, r["y"] + r["h"] / 2
        for t in ("mouseMoved", "mousePressed", "mouseReleased"):
            self._call("Input.dispatchMouseEvent", {"type": t, "x": x, "y": y, "button": "left",
                                                    "clickCount": 0 if t == "mouseMoved" else 1})

    def screenshot(self, path, selector=None):
        """Save a PNG of the viewport, or of the whole element matching `selector`; returns path."""
        params = {"format": "png"}
        if selector:
            r = self._rect(selector)
            params.update(captureBeyondViewport=True, clip={"x": r["x"] + r["sx"], "y": r["y"] + r["sy"],
                                                            "width": r["w"], "height": r["h"], "scale": 1})
        with open(path, "wb") as f:
            f.write(base64.b64decode(self._call("Page.captureScreenshot", params)["data"]))
        return path

    def console_errors(self):
        """Console errors and uncaught exceptions (strings) seen since the last open()."""
        while select.select([self._in], [], [], 0.05)[0]:
            self._pump(0)
        return list(self._errors)

    def close(self):
        """Ask the browser to quit (Browser.close), wait, kill after 5 s, remove the profile dir."""
        proc = self._proc
        if proc and proc.poll() is None:
            try:
                if self._session:             # handshake worked, so a polite close may too
                    self._call("Browser.close", session=False, timeout=5)
            except Exception:
                pass                          # EOF/timeout here: fall through to the kill
            try:
                proc.wait(timeout=5 if self._session else 0.1)
            except subprocess.TimeoutExpired:
                pass
        if proc:
            try:                              # the wrapper shell, renderers, zygotes, stragglers
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
        for fd in (self._out, self._in):
            if fd is not None:
                os.close(fd)
        self._out = self._in = self._proc = None
        self._log.close()
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _check(cond, what):
    if not cond:
        raise AssertionError(what)


def _self_test():
    tmp = tempfile.mkdtemp(prefix="browser-selftest-")
    try:
        page = os.path.join(tmp, "page.html")
        with open(page, "w") as f:
            f.write("<!doctype html><title>self-test</title><p id=key>none</p><p id=out>idle</p>"
                    "<div style='height:2000px'></div><button id=btn onclick=\"out.textContent='clicked'\">go</button>"
                    "<div id=box style='width:200px;height:120px;background:#c33'></div>"
                    "<script>addEventListener('keydown', e => key.textContent = e.key);"
                    "console.error('expected error');</script><script>throw new Error('boom')</script>")
        with Browser(width=800, height=600) as b:
            b.open("file://" + page)
            _check(b.evaluate("document.title") == "self-test", "evaluate(document.title)")
            _check(b.evaluate("Promise.resolve(6 * 7)") == 42, "evaluate awaits promises")
            try:
                b.evaluate("null.x"); raise AssertionError("evaluate should raise on JS error")
            except RuntimeError as e:
                _check("TypeError" in str(e), "JS error text: %s" % e)
            for k in ("ArrowRight", "j", "1", "Enter", "Escape"):
                b.press(k)
                got = b.evaluate("key.textContent")
                _check(got == k, "press(%r) -> keydown saw %r" % (k, got))
            b.click("#btn")
            _check(b.evaluate("out.textContent") == "clicked", "click(#btn) did not fire")
            for name, sel, size in (("view.png", None, (800, 600)), ("box.png", "#box", (200, 120))):
                with open(b.screenshot(os.path.join(tmp, name), sel), "rb") as f:
                    head = f.read(24)
                _check(head[:8] == b"\x89PNG\r\n\x1a\n", "%s is not a PNG" % name)
                got = (int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big"))
                _check(got == size, "%s size %s, expected %s" % (name, got, size))
            errs = b.console_errors()
            _check(any("expected error" in e for e in errs) and any("boom" in e for e in errs),
                   "console_errors() = %r" % errs)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    if sys.argv[1:] != ["--self-test"]:
        sys.exit("usage: browser.py --self-test")
    try:
        _self_test()
    except Exception as e:
        sys.exit("browser.py self-test FAILED: %s: %s" % (type(e).__name__, e))
    print("browser.py self-test passed")
