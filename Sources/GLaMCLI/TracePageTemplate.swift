// The page of `glam trace --html`: HTML, CSS and script in one file that needs no network (no
// external script, style sheet or font). The data (TracePage.swift) sits in a
// <script type="application/json"> element; the script draws the stepper from it:
//
//   tokens (click one: it is followed everywhere) · layers · the stages of the layer
//   the stage: its equation, the code that computes it, the followed token's numbers
//
// Keys: ← → previous / next stage (across layers), ↑ ↓ previous / next token, Home / End first /
// last stage, 0–9 first stage of that layer. Every number the page shows from the data carries it
// unrounded in `data-value` and names it in `data-field`, so a test can compare the page with
// `glam trace --json` (Scripts/trace/check_page.py).

enum TracePageTemplate {
    /// The page with `title` (already escaped for HTML) and `data` (a JSON object, every "<" escaped).
    static func page(title: String, data: String) -> String {
        #"""
        <!DOCTYPE html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>\#(title)</title>
        <style>
        \#(style)
        </style>
        </head>
        <body>
        <header>
        <h1 id="prompt"></h1>
        <p id="model"></p>
        <p class="keys">Keys: <kbd>←</kbd> <kbd>→</kbd> stage · <kbd>↑</kbd> <kbd>↓</kbd> token · <kbd>Home</kbd> <kbd>End</kbd> first / last stage · <kbd>0</kbd>–<kbd>9</kbd> layer. Click any token, row or slot to follow that token.</p>
        </header>
        <nav aria-label="tokens" id="tokens"></nav>
        <nav aria-label="layers" id="layers"></nav>
        <nav aria-label="stages"><button id="previous" aria-label="previous stage">←</button><ol id="stages"></ol><button id="next" aria-label="next stage">→</button></nav>
        <main id="stage" aria-live="polite"></main>
        <script type="application/json" id="trace-data">\#(data)</script>
        <script>
        \#(script)
        </script>
        </body>
        </html>

        """#
    }

    static let style = #"""
        body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 0 auto; max-width: 1100px; padding: 12px 20px 40px; color: #1d1d1f; }
        h1 { font-size: 20px; margin: 4px 0; } h2 { font-size: 18px; margin: 8px 0 4px; } h3 { font-size: 14px; margin: 12px 0 4px; }
        header p { margin: 2px 0; color: #444; } .keys { font-size: 12px; }
        kbd { border: 1px solid #bbb; border-radius: 3px; padding: 0 4px; font-size: 11px; background: #f6f6f6; }
        nav { display: flex; flex-wrap: wrap; gap: 4px; align-items: center; margin: 8px 0; }
        button { font: inherit; border: 1px solid #c8c8c8; background: #fafafa; border-radius: 4px; padding: 2px 7px; cursor: pointer; }
        button:focus-visible { outline: 2px solid #0a64d6; outline-offset: 1px; }
        .tok { font-family: ui-monospace, Menlo, Consolas, monospace; white-space: pre; }
        .tok small { color: #888; font-size: 10px; margin-right: 3px; }
        .sel, .tok.sel, tr.sel td:not(.p), .slot.sel { background: #ffe58a !important; border-color: #d4a600; }
        tr.sel td.p { box-shadow: inset 0 0 0 2px #d4a600; }
        .current { background: #0a64d6; color: white; border-color: #0a64d6; }
        #stages { display: flex; flex-wrap: wrap; gap: 4px; list-style: none; padding: 0; margin: 0 6px; }
        #stage { border-top: 1px solid #ddd; margin-top: 6px; }
        pre.eq { background: #f4f6fa; padding: 8px 10px; border-radius: 4px; font-size: 13px; white-space: pre-wrap; }
        .code { font-size: 12px; color: #555; } .code code { color: #222; }
        .vec { margin: 6px 0; } .vec .label { display: inline-block; min-width: 230px; }
        .heat { display: flex; margin-top: 2px; } .heat span { width: 9px; height: 14px; display: inline-block; }
        .num { font-family: ui-monospace, Menlo, Consolas, monospace; }
        table { border-collapse: collapse; font-size: 12px; } td, th { padding: 1px 5px; border: 1px solid #e2e2e2; text-align: right; }
        th { background: #f4f4f4; } td.t { text-align: left; font-family: ui-monospace, Menlo, Consolas, monospace; white-space: pre; cursor: pointer; }
        td.p { min-width: 34px; cursor: pointer; } .drop { color: #c00; font-weight: bold; } .kept { color: #0a7a2f; }
        .heads { display: flex; flex-wrap: wrap; gap: 16px; } .head canvas { border: 1px solid #ccc; cursor: pointer; image-rendering: pixelated; }
        .experts .row { display: flex; align-items: center; gap: 3px; margin: 3px 0; flex-wrap: wrap; }
        .experts .name { min-width: 92px; }
        .slot { min-width: 42px; border: 1px solid #9bb3d6; background: #eef3fb; border-radius: 3px; padding: 0 3px; font-size: 11px; cursor: pointer; text-align: center; }
        .slot.empty { background: #fff; border-style: dashed; color: #aaa; cursor: default; }
        .slot.dropped { border-color: #e09a9a; background: #fdeeee; color: #a00; }
        .slot sup { font-size: 9px; } .note { color: #555; font-size: 12px; }
        """#

    static let script = #"""
        "use strict";
        const D = JSON.parse(document.getElementById("trace-data").textContent);
        const J = D.trace, T = J.tokens.length;
        const steps = [];
        D.layers.forEach((L, li) => (L.moe ? D.stages.moe : D.stages.dense).forEach(s => steps.push({ li, stage: s })));
        steps.push({ li: -1, stage: D.stages.prediction[0] });
        const state = { step: 0, token: J.predictions.position };

        function esc(s) { return String(s).replace(/[&<>"]/g, c => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]); }
        function shown(text) { return text.replace(/\n/g, "\\n").replace(/\t/g, "\\t").replace(/ /g, "␣"); }
        function tokenText(p) { return shown(J.tokens[p].text); }
        function fixed(x, d) { return x === null ? "n/a" : x.toFixed(d); }
        function num(field, x, d) { return `<span class="num" data-field="${field}" data-value="${x}">${fixed(x, d)}</span>`; }
        function ordinal(k) { return k === 0 ? "1st" : "2nd"; }
        function color(x, scale) {
          const a = Math.min(1, Math.abs(x) / (scale || 1));
          return x >= 0 ? `rgba(200,40,30,${a.toFixed(3)})` : `rgba(30,90,200,${a.toFixed(3)})`;
        }
        function vec(label, v, field) {
          if (!v) return `<div class="vec">${esc(label)}: not traced${D.mesh ? " (on a mesh the page follows core 0’s pass; the experts run on their own cores)" : ""}</div>`;
          const scale = Math.max(...v.v.map(Math.abs)) || 1;
          const cells = v.v.map(x => `<span style="background:${color(x, scale)}" title="${x}"></span>`).join("");
          const first = v.v.slice(0, 6).map(x => x.toFixed(3)).join(", ");
          const more = D.model_dim > 6 ? ", …" : "";
          return `<div class="vec" data-vector="${field}"><span class="label">${esc(label)}</span> ‖·‖ = ${num(field + ".norm", v.n, 3)}` +
            ` &nbsp;[${first}${more}] (${D.model_dim} values)<div class="heat" title="first ${v.v.length} values: red positive, blue negative">${cells}</div></div>`;
        }
        function route(L) { return J.moe_layers.find(m => m.layer === L.layer).tokens.find(r => r.position === state.token); }
        function moeTrace(L) { return J.moe_layers.find(m => m.layer === L.layer); }

        function select(p) { state.token = Math.max(0, Math.min(T - 1, p)); render(); }
        function go(step) { state.step = Math.max(0, Math.min(steps.length - 1, step)); render(); }

        function renderHeader() {
          document.getElementById("prompt").textContent = `glam trace "${J.prompt}" — ${T} tokens`;
          const m = J.model;
          document.getElementById("model").textContent =
            `${m.layers} layers, M = ${m.model_dim}, N×D = ${m.num_heads}×${m.head_dim}, V = ${m.vocab_size}` +
            (m.num_experts > 0 ? `, E = ${m.num_experts} experts in layers ${m.moe_layers.join(", ")}` : ", dense") + ` — from ${J.source}`;
        }
        function renderTokens() {
          document.getElementById("tokens").innerHTML = J.tokens.map(t =>
            `<button class="tok${t.position === state.token ? " sel" : ""}" data-position="${t.position}" aria-pressed="${t.position === state.token}"` +
            ` title="position ${t.position}, id ${t.id}"><small>${t.position}</small>${esc(shown(t.text))}</button>`).join("");
        }
        function renderLayers() {
          const li = steps[state.step].li;
          const items = D.layers.map((L, i) =>
            `<button class="${i === li ? "current" : ""}" data-layer="${i}">layer ${L.layer} ${L.moe ? "MoE" : "dense"}</button>`);
          items.push(`<button class="${li === -1 ? "current" : ""}" data-layer="-1">prediction</button>`);
          document.getElementById("layers").innerHTML = items.join("");
        }
        function renderStages() {
          const li = steps[state.step].li;
          document.getElementById("stages").innerHTML = steps.map((s, i) => ({ s, i })).filter(x => x.s.li === li).map(({ s, i }) =>
            `<li><button class="${i === state.step ? "current" : ""}" data-step="${i}"${i === state.step ? ' aria-current="step"' : ""}>${esc(s.stage.title)}</button></li>`).join("");
        }

        function attentionBody(L) {
          const A = L.attention, rows = [];
          if (!A) return "<p>not traced</p>";
          const size = Math.max(2, Math.min(8, Math.floor(256 / T)));
          A.p.forEach((head, n) => {
            const s = A.strongest[state.token][n];
            const keys = s.keys.map((k, j) =>
              `<li>key <span data-field="attention.${n}.key.${j}" data-value="${k.position}">${k.position}</span> “${esc(tokenText(k.position))}” ` +
              `${num(`attention.${n}.probability.${j}`, k.probability, 3)} <span class="note">bucket ${k.bucket}</span></li>`).join("");
            rows.push(`<div class="head"><h3>head ${n}</h3><canvas data-head="${n}" width="${T * size}" height="${T * size}"` +
              ` style="width:${T * size}px;height:${T * size}px" title="rows: queries, columns: keys; click a row to follow that token"></canvas>` +
              `<ol>${keys}</ol><div>extra zero logit: ${num(`attention.${n}.extra`, s.extra_logit, 3)}</div></div>`);
          });
          return `<p>Token ${state.token}’s strongest keys in each head, and the mass the extra zero logit took (1 − Σ p).</p>` +
            `<div class="heads">${rows.join("")}</div>` + vec("Attn(RMS(x)) of this token", L.vectors["attention.output"][state.token], "attention.output");
        }
        function drawHeads(L) {
          const size = Math.max(2, Math.min(8, Math.floor(256 / T)));
          document.querySelectorAll("canvas[data-head]").forEach(canvas => {
            const p = L.attention.p[+canvas.dataset.head], g = canvas.getContext("2d");
            for (let q = 0; q < T; q++) for (let k = 0; k < T; k++) {
              g.fillStyle = `rgba(20,60,160,${Math.min(1, p[q][k]).toFixed(3)})`;
              g.fillRect(k * size, q * size, size, size);
            }
            g.strokeStyle = "#e0a800"; g.lineWidth = 2;
            g.strokeRect(1, state.token * size, T * size - 2, size);
            canvas.onclick = e => select(Math.floor(e.offsetY / size));
          });
        }
        function routerBody(L) {
          const m = moeTrace(L), E = m.num_experts;
          const head = `<tr><th>pos</th><th>token</th>${[...Array(E).keys()].map(e => `<th>e${e}</th>`).join("")}</tr>`;
          const body = m.tokens.map(r => {
            const cells = L.router[r.position].map((p, e) => {
              let mark = "";
              r.experts.forEach((x, k) => {
                if (x === e && r.outcomes[k] !== "not_chosen" && r.outcomes[k] !== "padding")
                  mark = r.outcomes[k] === "kept" ? `<span class="kept">${k + 1}</span>` : `<span class="drop" title="${ordinal(k)} choice dropped: expert ${e} was full">✕${k + 1}</span>`;
              });
              return `<td class="p" style="background:${color(p, 1)}" title="p = ${p}">${mark || "&nbsp;"}</td>`;
            }).join("");
            return `<tr class="${r.position === state.token ? "sel" : ""}" data-position="${r.position}"><td>${r.position}</td><td class="t">${esc(tokenText(r.position))}</td>${cells}</tr>`;
          }).join("");
          const own = L.router[state.token].map((p, e) => `e${e} ${num(`router.${e}`, p, 3)}`).join(" · ");
          return vec("y = RMS(h; ffn_norm) of this token", L.vectors.ffn_norm[state.token], "ffn_norm") +
            `<p>Router probabilities of token ${state.token}: ${own}</p>` +
            `<p class="note">Every token × expert: shade = p; 1, 2 = kept 1st, 2nd choice; ✕ = dropped (expert full). Click a row to follow its token.</p>` +
            `<table class="router"><thead>${head}</thead><tbody>${body}</tbody></table>`;
        }
        function top2Body(L) {
          const r = route(L), m = moeTrace(L);
          const rows = [0, 1].map(k => {
            const chosen = r.outcomes[k] !== "not_chosen" && r.outcomes[k] !== "padding";
            return `<tr><td>${ordinal(k)}</td><td data-field="expert.${k}" data-value="${chosen ? r.experts[k] : ""}">${chosen ? r.experts[k] : "none"}</td>` +
              `<td>${num(`raw_gate.${k}`, r.raw_gates[k], 3)}</td><td>${num(`renormalized_gate.${k}`, r.renormalized_gates[k], 3)}</td>` +
              `<td>${num(`gate.${k}`, r.gates[k], 3)}</td><td data-field="outcome.${k}" data-value="${r.outcomes[k]}" class="${r.outcomes[k] === "kept" ? "kept" : "drop"}">${r.outcomes[k].replace("_", " ")}</td></tr>`;
          }).join("");
          const top = r.router_top.map((x, j) => `e${x.expert} ${num(`router_top.${j}`, x.probability, 3)}`).join(" · ");
          return `<p>Router’s favourites for token ${state.token}: ${top}</p>` +
            `<table><tr><th>choice</th><th>expert</th><th>p</th><th>renormalised</th><th>combine weight</th><th>outcome</th></tr>${rows}</table>` +
            `<p>Token ${state.token}’s share of the layer’s load-balancing loss: ${num("aux_loss_share", r.aux_loss_share, 4)} of ${num("aux_loss", m.aux_loss, 4)}.</p>`;
        }
        function capacityBody(L) {
          const m = moeTrace(L), C = m.capacity, r = route(L);
          const held = [...Array(m.num_experts)].map(() => Array(C).fill(null)), dropped = [...Array(m.num_experts)].map(() => []);
          m.tokens.forEach(t => [0, 1].forEach(k => {
            if (t.outcomes[k] === "kept") held[t.experts[k]][t.queue_positions[k]] = { position: t.position, choice: k };
            if (t.outcomes[k] === "over_capacity") dropped[t.experts[k]].push({ position: t.position, choice: k, queue: t.queue_positions[k] });
          }));
          const rows = held.map((slots, e) => {
            const cells = slots.map((h, c) => h === null
              ? `<span class="slot empty" data-expert="${e}" data-slot="${c}" title="slot ${c}: empty">${c}</span>`
              : `<span class="slot${h.position === state.token ? " sel" : ""}" data-expert="${e}" data-slot="${c}" data-position="${h.position}" data-choice="${h.choice}"` +
                ` title="slot ${c}: token ${h.position} (${ordinal(h.choice)} choice)">${h.position}<sup>${h.choice + 1}</sup></span>`).join("");
            const out = dropped[e].map(d => `<span class="slot dropped${d.position === state.token ? " sel" : ""}" data-expert="${e}" data-position="${d.position}" data-dropped="${d.choice}"` +
              ` title="token ${d.position}'s ${ordinal(d.choice)} choice, queue place ${d.queue} ≥ C">✕${d.position}<sup>${d.choice + 1}</sup></span>`).join("");
            return `<div class="row"><span class="name">expert ${e}${D.mesh ? ` <small>cores ${D.mesh.cores_of_expert[e].join(",")}</small>` : ""}</span>${cells}${out}</div>`;
          }).join("");
          const lines = [0, 1].map(k => {
            if (r.outcomes[k] === "not_chosen" || r.outcomes[k] === "padding") return `<li>${ordinal(k)} choice: none</li>`;
            const place = `expert ${r.experts[k]}, queue place <span data-field="queue_position.${k}" data-value="${r.queue_positions[k]}">${r.queue_positions[k]}</span> of C = ${C}`;
            if (r.outcomes[k] === "kept") return `<li>${ordinal(k)} choice: ${place} — <span class="kept">kept</span> in slot ${r.queue_positions[k]}</li>`;
            const by = r.filled_by[k].map(h => `${h.position} (${ordinal(h.choice)})`).join(", ");
            return `<li>${ordinal(k)} choice: ${place} — <span class="drop">dropped</span>: its ${C} slots hold ${by}</li>`;
          }).join("");
          return `<p>Each expert has <span data-field="capacity" data-value="${C}">C = ${C}</span> slots in the group (S = ${m.group_size}, E = ${m.num_experts}). ` +
            `All 1st choices queue first, in token order, then the 2nd choices.</p><ul>${lines}</ul>` +
            `<div class="experts">${rows}</div><p class="note">Slots in queue order: token position, superscript 1 or 2 for its choice; ✕ after the slots: choices dropped over capacity. Click one to follow that token.</p>`;
        }
        function slotVectors(L, side, label) {
          const r = route(L), rows = L.slots ? L.slots[state.token] : [null, null];
          return [0, 1].map(k => r.outcomes[k] === "kept" && rows[k]
            ? vec(`${label} (${ordinal(k)} choice: expert ${r.experts[k]}, slot ${r.queue_positions[k]})`, rows[k][side], `${side}.${k}`)
            : `<div class="vec">${ordinal(k)} choice: ${r.outcomes[k].replace("_", " ")}, no slot</div>`).join("");
        }
        function dispatchBody(L) {
          const r = route(L);
          let mesh = `<p class="note">Run with --mesh DxM to see which cores hold each expert and what the all-to-alls move.</p>`;
          if (D.mesh) {
            const where = [0, 1].filter(k => r.outcomes[k] === "kept").map(k => `expert ${r.experts[k]} lives on cores ${D.mesh.cores_of_expert[r.experts[k]].join(", ")}`);
            mesh = `<p>${where.join("; ") || "no expert holds this token"}. Each of the pass’s ${D.mesh.all_to_alls} all-to-alls (a dispatch and a return per MoE layer) moves ` +
              `<span data-field="bytes_per_all_to_all" data-value="${D.mesh.bytes_per_all_to_all}">${D.mesh.bytes_per_all_to_all}</span> bytes between cores, all cores together.</p>`;
          }
          return `<p>Each kept choice copies the token’s y into its expert’s slot; the slot rows equal y.</p>` +
            slotVectors(L, "in", "expert input") + mesh;
        }
        function combineBody(L) {
          const r = route(L);
          const terms = [0, 1].filter(k => r.outcomes[k] === "kept").map(k => `${num(`gate.${k}`, r.gates[k], 3)} · out[e${r.experts[k]}]`);
          return `<p>moe = ${terms.join(" + ") || "0 (both choices dropped: the residual carries the token on)"}</p>` +
            vec("moe output of this token", L.vectors["moe.output"][state.token], "moe.output");
        }
        function predictionBody() {
          const rows = D.predictions[state.token].map((p, j) =>
            `<tr><td data-field="prediction.${j}.id" data-value="${p.id}">${p.id}</td><td class="t">${esc(shown(p.text))}</td><td>${num(`prediction.${j}.probability`, p.probability, 3)}</td></tr>`).join("");
          return vec("RMS(x; final_norm) of this token", D.final_norm[state.token], "final_norm") +
            `<h3>Next token after position ${state.token} “${esc(tokenText(state.token))}”</h3><table><tr><th>id</th><th>token</th><th>probability</th></tr>${rows}</table>`;
        }
        function stageBody(s, L) {
          const t = state.token;
          switch (s.id) {
            case "attention_norm": return vec("x, the layer’s input", L.vectors.input[t], "input") + vec("RMS(x; attention_norm)", L.vectors.attention_norm[t], "attention_norm");
            case "attention": return attentionBody(L);
            case "residual": return vec("h = x + Attn", L.vectors.residual[t], "residual");
            case "router": return routerBody(L);
            case "top2": return top2Body(L);
            case "capacity": return capacityBody(L);
            case "dispatch": return dispatchBody(L);
            case "experts": return slotVectors(L, "out", "expert output");
            case "combine": return combineBody(L);
            case "ffn_norm": return vec("y = RMS(h; ffn_norm)", L.vectors.ffn_norm[t], "ffn_norm");
            case "ffn": return vec("FFN(y)", L.vectors["ffn.output"][t], "ffn.output");
            case "output": return vec("x' = h + FFN(y)", L.vectors.output[t], "output");
            case "prediction": return predictionBody();
          }
          return "";
        }
        function renderStage() {
          const { li, stage } = steps[state.step], L = D.layers[li];
          const where = li === -1 ? "after the last layer" : `layer ${L.layer} (${L.moe ? "mixture of experts" : "dense"})`;
          document.getElementById("stage").innerHTML =
            `<h2>${esc(stage.title)} <small class="note">— ${where}, token ${state.token} “${esc(tokenText(state.token))}”, step ${state.step + 1} of ${steps.length}</small></h2>` +
            `<pre class="eq">${esc(stage.equation)}</pre><p class="code">Computed by <code>${esc(stage.code)}</code></p>` + stageBody(stage, L);
          if (stage.id === "attention") drawHeads(L);
        }
        function render() {
          const { li, stage } = steps[state.step];
          Object.assign(document.body.dataset, { step: state.step, stage: stage.id, layer: li === -1 ? "prediction" : D.layers[li].layer, token: state.token });
          renderTokens(); renderLayers(); renderStages(); renderStage();
        }

        document.addEventListener("click", e => {
          const target = e.target.closest("[data-position],[data-layer],[data-step]");
          if (!target) return;
          if (target.dataset.step !== undefined) go(+target.dataset.step);
          else if (target.dataset.layer !== undefined) go(steps.findIndex(s => s.li === +target.dataset.layer));
          else select(+target.dataset.position);
        });
        document.getElementById("previous").onclick = e => { e.stopPropagation(); go(state.step - 1); };
        document.getElementById("next").onclick = e => { e.stopPropagation(); go(state.step + 1); };
        document.addEventListener("keydown", e => {
          if (e.altKey || e.ctrlKey || e.metaKey) return;
          const keys = { ArrowRight: () => go(state.step + 1), ArrowLeft: () => go(state.step - 1), ArrowDown: () => select(state.token + 1),
            ArrowUp: () => select(state.token - 1), Home: () => go(0), End: () => go(steps.length - 1) };
          if (keys[e.key]) { keys[e.key](); e.preventDefault(); return; }
          if (/^[0-9]$/.test(e.key) && +e.key < D.layers.length) { go(steps.findIndex(s => s.li === +e.key)); e.preventDefault(); }
        });
        renderHeader();
        render();
        """#
}
