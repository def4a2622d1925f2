#!/usr/bin/env python3
"""Opens the built DocC site (Scripts/docs/build.sh) in a real headless browser and checks that the
landing page, the articles and a few symbol pages render their text.

DocC pages are a JavaScript application that fetches JSON, so reading the HTML files proves
nothing; this serves the site on 127.0.0.1 and asks Chromium (Debian's chromium-headless-shell, or
chromium) for the DOM after the scripts ran. Ends with "N passed, N failed"; exit 1 if any failed.
"""
import functools
import html
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
SITE = os.path.join(ROOT, ".build-docs", "site")

# (path under /documentation/glam/, texts that must appear in the rendered page)
PAGES = [
    ("", ["GLaM (Du et al. 2021) in Swift", "Follow one token", "Top-2 gating", "From the paper to the code", "GLaMModel"]),
    ("followonetoken", ["Follow one token", "The router", "capacity C = 1", "next token after position 1", "--html trace.html"]),
    ("fromthepapertothecode", ["From the paper to the code", "The load-balancing loss"]),
    ("themodel", ["The model", "extra zero logit"]),
    ("toptwogating", ["Top-2 gating", "worked example"]),
    ("trainingthemodel", ["Adafactor"]),
    ("checkpoints", ["Checkpoints and parameter names", "final_norm.scale"]),
    ("goldenfixtures", ["top2_gating", "adafactor_step"]),
    ("shardingovertpucores", ["all-to-all", "The same model on JAX’s GSPMD mesh"]),
    ("commandline", ["glam trace"]),
    ("glammodel", ["A GLaM decoder with its weights", "embedding"]),
    ("top2gating(logits:paddings:configuration:)", ["GShard top-2 gating"]),
    ("forwardtrace", ["ForwardTrace", "observe"]),
    # The tutorial (under /tutorials/, not /documentation/glam/): its table of contents, and the
    # tutorial with a step's code and a console file.
    ("/tutorials/stepthroughglam", ["Step through GLaM", "One token through the model", "Follow a token in code"]),
    ("/tutorials/glam/followatokenincode", ["Follow a token in code", "Build a tiny GLaM", "Read the routing of one token",
                                             "Train a few steps", "ForwardTrace()", "C = 12, aux loss"]),
]


def browser():
    for name in ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    sys.exit("check_site: no headless Chromium found (apt-get install chromium-headless-shell)")


def main():
    if not os.path.isdir(os.path.join(SITE, "documentation")):
        sys.exit(f"check_site: {SITE} has no built site; run Scripts/docs/build.sh first")
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=SITE)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/documentation/glam/"
    chrome = browser()
    passed = failed = 0
    for path, texts in PAGES:
        url = base.replace("/documentation/glam/", "") + path if path.startswith("/") else base + path
        result = subprocess.run(
            [chrome, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=20000", "--dump-dom", url],
            capture_output=True, text=True, timeout=120)
        dom = result.stdout
        # The rendered text: tags (DocC puts <wbr> inside long code words) removed, entities decoded.
        text_only = html.unescape(re.sub(r"<[^>]+>", "", dom))
        missing = [text for text in texts if text not in text_only]
        if result.returncode == 0 and not missing:
            passed += 1
            print(f"PASS  {url}")
        else:
            failed += 1
            print(f"FAIL  {url}: missing {missing} (browser exit {result.returncode}, {len(dom)} characters of DOM)")
    server.shutdown()
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
