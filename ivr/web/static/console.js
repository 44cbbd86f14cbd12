// The trainer console's page: one WebSocket to the server, which runs the call; this page only
// sends what the trainee does and shows what the server reports (states, prompts, decisions,
// events from the bus, the countdown). The diagram is Mermaid text the server generates from
// the flow's own tables, drawn here by the vendored Mermaid (no network needed).
"use strict";

const $ = (id) => document.getElementById(id);
const KEYS = "0123456789*#";
const TIMEOUT = 5; // seconds of the no-input countdown (ivr.engine.NO_INPUT_TIMEOUT)
const SUMMARY = ["outcome", "reason", "rule", "method", "queue", "priority", "ticket", "contract", "balance_after"];

let socket = null;
let connected = false; // the server is there: a closed socket means every later action is refused
let personas = [];
let running = false; // a call is in progress on this page
let heard = true; // the caller answered since the last prompt: the next prompt starts a fresh screen
let taken = ""; // keys the IVR took at the prompt now playing
let pending = []; // keys sent that the IVR has not taken yet (typed ahead of the prompt)
let scenario = null; // the last ended call's scenario text and file name
let paused = false;
let drawSeq = 0;
let drawing = false;
let nextDrawing = null;
let diagrams = { main: "", all: "", state: "" }; // the latest texts from the server
let facts = {}; // what the session world holds for each persona now
let quiet = false; // redrawing a played-back scenario up to a step: speak nothing
let replay = null; // a scenario played back: { frames, at (the step shown), timer }
// ?session=NAME joins that shared session world; without it the page has a world of its own.
const QUERY = new URLSearchParams(location.search);
const SESSION = QUERY.get("session");
// ?room=NAME: the trainer's read-only view of session NAME; &trainee=NAME names a trainee's page.
const ROOM = QUERY.get("room");
const TRAINEE = QUERY.get("trainee");
let room = null; // the latest roster of the watched session
let chosen = null; // the trainee whose branches the diagram shows

mermaid.initialize({
  startOnLoad: false,
  securityLevel: "strict",
  theme: "neutral",
  themeVariables: { fontSize: "17px" },
  flowchart: { curve: "basis", nodeSpacing: 28, rankSpacing: 34, padding: 6 },
});

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else node.setAttribute(name, value);
  }
  for (const child of children) node.append(child);
  return node;
}

const OFFLINE = "the console server is not answering (stopped, or the network is down): reload the page once it is back";

function send(message) {
  if (connected && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
  else showMessage(OFFLINE);
}

function showTyped() {
  $("typed").textContent = taken + pending.join("");
}

function showMessage(text) {
  const box = $("message");
  box.textContent = text;
  box.hidden = false;
}

function clearMessage() {
  $("message").hidden = true;
  $("message").textContent = "";
}

function append(list, item) {
  // Scroll the list itself to its newest entry; never the page (scrollIntoView would move both).
  list.append(item);
  list.scrollTop = list.scrollHeight;
}

function setRunning(on) {
  running = on;
  $("call").disabled = on || !personas.length;
  for (const id of ["silence", "hangup", "pause"]) $(id).disabled = !on;
  for (const key of document.querySelectorAll(".key")) key.disabled = !on;
}

// -- the diagram: drawn in order, the latest text wins -----------------------------------------

async function drawDiagram(text, state) {
  nextDrawing = { text, state };
  if (drawing) return;
  drawing = true;
  try {
    while (nextDrawing) {
      const job = nextDrawing;
      nextDrawing = null;
      drawSeq += 1;
      const { svg } = await mermaid.render(`flow-svg-${drawSeq}`, job.text);
      const box = $("diagram");
      box.innerHTML = svg;
      box.dataset.current = job.state || "";
      if (ROOM) paintTrainee();
      centreCurrent(box);
    }
  } catch (err) {
    showMessage(`the diagram could not be drawn: ${err}`);
  } finally {
    drawing = false;
  }
}

function centreCurrent(box) {
  // Where the diagram is wider or taller than its box (a phone), scroll the box — never the
  // page — so the current state is in view.
  const node = box.querySelector("g.node.current");
  if (!node) return;
  const at = node.getBoundingClientRect();
  const frame = box.getBoundingClientRect();
  box.scrollLeft += at.left + at.width / 2 - (frame.left + frame.width / 2);
  box.scrollTop += at.top + at.height / 2 - (frame.top + frame.height / 2);
}

function redraw() {
  drawDiagram($("all-edges").checked ? diagrams.all : diagrams.main, diagrams.state);
}

// -- what the server says ------------------------------------------------------------------------

const handlers = {
  hello(msg) {
    personas = msg.personas;
    const select = $("persona");
    // The list names each persona by its id alone, so no name is cut off; the line below describes it.
    select.replaceChildren(...personas.map((p) => el("option", { value: p.id, text: p.id, title: p.description })));
    $("zone").replaceChildren(...msg.zones.map((z) => el("option", { value: z.id, text: `${z.name} (${z.id})` })));
    $("at").value = msg.default_at;
    choosePersona();
    diagrams = { main: msg.diagram, all: msg.diagram_all, state: "" };
    redraw();
    handlers.world(msg.world);

    $("status").textContent = `connected · fixture ${msg.fixture}`;
    setRunning(false);
    if (msg.watching) {
      $("status").textContent = `watching session ${ROOM} (read-only) · fixture ${msg.fixture}`;
      $("call").disabled = true;
    }
  },
  started(msg) {
    clearMessage();
    stopPlaying(); // a live call takes the panels over from a played-back scenario
    replay = null;
    $("player").hidden = true;
    for (const id of ["decisions", "events", "prompts", "path"]) $(id).replaceChildren();
    $("result").hidden = true;
    taken = "";
    pending = [];
    heard = true;
    showTyped();
    $("caller-number").textContent = msg.caller;
    $("status").textContent = `call ${msg.call_id} · ${msg.persona} · ${msg.at}`;
    scenario = null;
    paused = false;
    $("pause").textContent = "Pause countdown";
    setRunning(true);
  },
  state(msg) {
    if (msg.heard) heard = true;
    $("state").textContent = msg.state;
    $("path").replaceChildren(...msg.path.map((s) => el("li", { text: s })));
    diagrams = { main: msg.diagram, all: msg.diagram_all, state: msg.state };
    redraw();
  },
  prompt(msg) {
    // Prompts played one after another (the case number, then "please hold") stay on the screen
    // together; the caller's next key starts it afresh.
    if (heard) $("prompt-text").replaceChildren();
    heard = false;
    $("prompt-text").append(el("p", { text: msg.text }));
    taken = "";
    showTyped();
    const item = el("li", {}, el("b", { text: msg.name }), " ", msg.text);
    append($("prompts"), item);
    if (!quiet && $("sound").checked && "speechSynthesis" in window) {
      window.speechSynthesis.speak(new SpeechSynthesisUtterance(msg.text));
    }
  },
  world(msg) {
    facts = msg.facts;
    const calls = `${msg.placed} call${msg.placed === 1 ? "" : "s"} since it was last reset`;
    if (msg.shared) {
      $("world-name").textContent = `session ${msg.name}`;
      $("world-summary").textContent = `Shared by ${msg.pages} page${msg.pages === 1 ? "" : "s"} that opened ` +
        `?session=${msg.name}: failures, tickets and balances carry over between calls · ${calls}.`;
    } else {
      $("world-name").textContent = "private";
      $("world-summary").textContent = `This page's own: failures, tickets and balances carry over between ` +
        `your calls, and no other page sees them (open ?session=NAME to share one) · ${calls}.`;
    }
    describePersona();
  },
  reset(msg) {
    showMessage(msg.by_you ? "the world is reset: as the fixture describes it" : "the trainer reset this session's world");
  },
  room(msg) {
    room = msg;
    if (!chosen && msg.trainees.length) chosen = msg.trainees[0].name;
    $("room-name").textContent = `session ${msg.session}`;
    $("trainees").replaceChildren(...msg.trainees.map((t) => {
      const call = t.call || {};
      const now = call.persona ? `${call.persona} · ${call.outcome ? `ended: ${call.outcome}` : call.state || "starting"}` : "no call yet";
      const item = el("li", { class: t.name === chosen ? "chosen" : "", "data-trainee": t.name },
        el("div", {}, el("span", { class: "who", text: t.name }), " ",
          el("span", { class: "hint", text: `${t.calls} call${t.calls === 1 ? "" : "s"} · walked ${t.walked.length} of ${msg.branches} branches` })),
        el("div", { class: "now", text: now }));
      if (call.prompt) item.append(el("p", { class: "said", text: `heard: ${call.prompt}` }));
      if (call.decision) item.append(el("p", { class: "said", text: call.decision }));
      item.addEventListener("click", () => {
        chosen = t.name;
        handlers.room(room);
      });
      return item;
    }));
    paintTrainee();
  },
  replay_loading(msg) {
    $("replay-status").textContent = `preparing “${msg.name}”…`;
  },
  replay(msg) {
    stopPlaying();
    replay = { frames: msg.frames, at: 0, timer: null };
    $("player").hidden = false;
    const verdict = msg.error ? `stopped: ${msg.error}` : msg.passed ? "it passes its expectations" : "it fails its expectations";
    const runs = msg.runs > 1 ? `${msg.runs} examples, ` : "";
    $("replay-status").textContent = `“${msg.name}”: ${runs}${msg.calls} call${msg.calls === 1 ? "" : "s"}, ` +
      `${msg.frames.length} steps; ${verdict}. Use Play, Back and Forward above the diagram.`;
    showStep(0);
  },
  replay_call(msg) {
    for (const id of ["decisions", "events", "prompts", "path"]) $(id).replaceChildren();
    $("result").hidden = true;
    $("prompt-text").replaceChildren();
    taken = "";
    pending = [];
    heard = true;
    showTyped();
    $("caller-number").textContent = msg.caller;
    const example = msg.example ? `example ${msg.example} · ` : "";
    $("status").textContent = `replay · ${example}call ${msg.index} · from ${msg.caller} at ${msg.at}`;
  },
  replay_result(msg) {
    const rows = [["outcome", msg.outcome], ["rule", msg.rule], ["reason", msg.reason], ["queue", msg.queue],
      ["priority", msg.priority], ["ticket", msg.ticket],
      ["deducted", Object.entries(msg.deducted || {}).map(([k, v]) => `${k}: ${v}`).join(", ") || "nothing"],
      ["expectations", msg.failures.length ? `not met: ${msg.failures.join("; ")}` : "met"]];
    $("outcome").replaceChildren(...rows.filter(([, v]) => v !== null && v !== undefined)
      .flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: String(v), "data-field": k })]));
    $("result").hidden = false;
    $("save").hidden = $("transcript").hidden = true; // a played-back call is the file itself
  },
  taken(msg) {
    heard = true;
    taken += msg.key;
    pending.shift();
    showTyped();
  },
  decision(msg) {
    const verdict = msg.granted === null ? "branch" : msg.granted ? "granted" : "denied";
    const head = el("div", {}, el("span", { class: "rule", text: msg.rule }), " ",
      el("span", { class: "verdict", text: verdict }));
    if (msg.reason) head.append(" ", el("i", { text: msg.reason }));
    head.append(" ", el("span", { class: "hint", text: `at ${msg.state}` }));
    const item = el("li", { class: verdict, "data-rule": msg.rule }, head,
      el("p", { class: "sentence", text: msg.sentence }), el("p", { class: "detail", text: msg.detail }));
    append($("decisions"), item);
  },
  event(msg) {
    const ev = msg.event;
    const data = ev.data || {};
    const fields = SUMMARY.filter((k) => data[k] !== undefined && data[k] !== null).map((k) => `${k}=${data[k]}`);
    const ledger = String(ev.type).startsWith("ivr.ledger.");
    const details = el("details", {}, el("summary", { text: msg.topic }),
      el("pre", { text: JSON.stringify(ev, null, 2) }));
    // The call's events are numbered 1, 2, 3...; the ledger's answer is its own stream (always 1), so
    // it is labelled "ledger" rather than numbered after them. Times are the call's simulated clock.
    const when = String(ev.time).slice(11, 19);
    const item = el("li", { class: ledger ? "ledger" : "call", "data-type": ev.type, "data-time": ev.time },
      el("span", { class: "seq", text: ledger ? "ledger " : `#${Number(ev.sequence)} ` }),
      el("span", { class: "time", text: `${when} ` }), el("span", { class: "type", text: ev.type }), " ",
      el("span", { class: "fields", text: fields.join(" ") }), details);
    append($("events"), item);
  },
  timer(msg) {
    const box = document.querySelector(".countdown");
    box.classList.toggle("paused", msg.paused);
    if (msg.paused) {
      $("countdown").textContent = "paused";
    } else if (msg.remaining === null) {
      $("countdown").textContent = "–";
    } else {
      $("countdown").textContent = `${msg.remaining.toFixed(1)} s`;
    }
    const share = msg.remaining === null ? (msg.paused ? 100 : 0) : (100 * msg.remaining) / TIMEOUT;
    $("countdown-bar").style.transition = msg.remaining === null ? "none" : "";
    $("countdown-bar").style.width = `${Math.max(0, Math.min(100, share))}%`;
  },
  secret(msg) {
    // Only for the persona still chosen: a late answer must not show another persona's code.
    if (msg.persona !== $("persona").value) return;
    $("persona-secret").textContent = msg.secrets.map((s) => `${s.kind} ${s.digits}`).join(", ") || "nothing to type";
  },
  ended(msg) {
    setRunning(false);
    $("save").hidden = $("transcript").hidden = false;
    scenario = { text: msg.scenario, filename: msg.filename, transcript: msg.transcript,
      transcriptFilename: msg.transcript_filename };
    const rows = [["outcome", msg.outcome], ["rule", msg.rule], ["reason", msg.reason], ["queue", msg.queue],
      ["priority", msg.priority], ["ticket", msg.ticket],
      ["deducted", Object.entries(msg.deducted).map(([k, v]) => `${k}: ${v}`).join(", ") || "nothing"]];
    $("outcome").replaceChildren(...rows.filter(([, v]) => v !== null && v !== undefined)
      .flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: String(v), "data-field": k })]));
    $("result").hidden = false;
    $("status").textContent = `call ${msg.call_id} ended: ${msg.outcome}`;
    pending = [];
    showTyped();
  },
  error(msg) {
    showMessage(msg.message);
    if (msg.call_over) setRunning(false);
    if (!running) $("call").disabled = !personas.length; // a refused Call may be tried again
  },
};

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const params = new URLSearchParams();
  for (const [key, value] of [["session", SESSION], ["trainee", TRAINEE], ["room", ROOM]]) {
    if (value) params.set(key, value);
  }
  const query = params.toString() ? `?${params}` : "";
  socket = new WebSocket(`${scheme}://${location.host}/ws${query}`);
  socket.addEventListener("message", (event) => {
    const msg = JSON.parse(event.data);
    const handler = handlers[msg.type];
    if (handler) handler(msg);
  });
  socket.addEventListener("open", () => {
    connected = true;
  });
  socket.addEventListener("close", () => {
    const wasRunning = running;
    connected = false;
    setRunning(false);
    $("call").disabled = true;
    handlers.timer({ remaining: null, paused: false }); // nothing counts down on a server that is gone
    $("status").textContent = "disconnected: reload the page to reconnect";
    showMessage(wasRunning ? `${OFFLINE}. The call was cut off.` : OFFLINE);
  });
}

// -- what the trainee does -----------------------------------------------------------------------

function describePersona() {
  const persona = personas.find((p) => p.id === $("persona").value);
  const now = persona && facts[persona.id] ? ` · in this world now: ${facts[persona.id]}` : "";
  $("persona-description").textContent = persona ? `${persona.description} · calls from ${persona.caller}${now}` : "";
}

function choosePersona() {
  // Codes and keys come masked; the whole one is asked for per persona, and forgotten on a change.
  const persona = personas.find((p) => p.id === $("persona").value);
  describePersona();
  $("secret-row").hidden = !(persona && persona.reveals);
  $("reveal").textContent = persona && persona.reveals ? `Show ${persona.reveals}` : "Show code";
  $("persona-secret").textContent = "";
}

function press(key) {
  if (ROOM) {
    showMessage("the room view is read-only: open the console without ?room= to place calls");
    return;
  }
  if (!connected) {
    showMessage(OFFLINE);
    return;
  }
  if (!running) {
    showMessage("no call in progress: choose a persona and press Call first");
    return;
  }
  send({ type: "key", key });
  pending.push(key);
  showTyped();
  const button = document.querySelector(`.key[data-key="${CSS.escape(key)}"]`);
  if (button) {
    button.classList.add("flash");
    setTimeout(() => button.classList.remove("flash"), 150);
  }
}

function placeCall() {
  if (running) return;
  $("call").disabled = true; // one call per click, however fast the clicks
  send({ type: "call", persona: $("persona").value, at: $("at").value, zone: $("zone").value });
}

// -- the room view: the chosen trainee's branches and state painted on the diagram ---------------

function paintTrainee() {
  const box = $("diagram");
  const who = room && room.trainees.find((t) => t.name === chosen);
  for (const path of box.querySelectorAll("path.walked")) path.classList.remove("walked");
  for (const node of box.querySelectorAll("g.node.here")) node.classList.remove("here");
  if (!who) return;
  for (const [source, dest] of who.walked) {
    const path = box.querySelector(`path[id$="-L_${CSS.escape(source)}_${CSS.escape(dest)}_0"]`);
    if (path) path.classList.add("walked");
  }
  const state = who.call && who.call.state;
  for (const node of box.querySelectorAll("g.node")) {
    if (state && node.textContent.trim() === state) node.classList.add("here");
  }
  $("state").textContent = state ? `${who.name}: ${state}` : "–";
}

// -- a scenario played back on the diagram: every step redrawn from its call's first frame ------

function showStep(index) {
  const frames = replay.frames;
  replay.at = Math.max(0, Math.min(frames.length - 1, index));
  let start = replay.at;
  while (start > 0 && frames[start].type !== "replay_call") start -= 1;
  quiet = true;
  for (let i = start; i < replay.at; i += 1) handlers[frames[i].type](frames[i]);
  quiet = false;
  handlers[frames[replay.at].type](frames[replay.at]); // the step itself, spoken if sound is on
  $("replay-step").textContent = `step ${replay.at + 1} of ${frames.length}: ${frames[replay.at].type.replace("replay_", "")}`;
  $("replay-back").disabled = replay.at === 0;
  $("replay-forward").disabled = replay.at === frames.length - 1;
  if (replay.at === frames.length - 1) stopPlaying();
}

function stopPlaying() {
  if (replay && replay.timer) clearInterval(replay.timer);
  if (replay) replay.timer = null;
  $("replay-play").textContent = "Play";
}

function togglePlaying() {
  if (!replay) return;
  if (replay.timer) {
    stopPlaying();
    return;
  }
  if (replay.at === replay.frames.length - 1) showStep(0);
  $("replay-play").textContent = "Pause";
  replay.timer = setInterval(() => showStep(replay.at + 1), Number($("replay-speed").value));
}

function openScenario() {
  const file = $("open-scenario").files[0];
  if (!file) return;
  file.text().then((text) => send({ type: "open", name: file.name, text }));
  $("open-scenario").value = ""; // the same file may be opened again
}

function download(text, filename, type) {
  const blob = new Blob([text], { type });
  const link = el("a", { href: URL.createObjectURL(blob), download: filename });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}

document.addEventListener("DOMContentLoaded", () => {
  setRunning(false);
  if (ROOM) {
    document.body.classList.add("room");
    $("room-card").hidden = false;
  }
  $("persona").addEventListener("change", choosePersona);
  $("reveal").addEventListener("click", () => send({ type: "reveal", persona: $("persona").value }));
  $("call").addEventListener("click", placeCall);
  $("hangup").addEventListener("click", () => send({ type: "hangup" }));
  $("silence").addEventListener("click", () => send({ type: "silence" }));
  $("pause").addEventListener("click", () => {
    paused = !paused;
    send({ type: paused ? "pause" : "resume" });
    $("pause").textContent = paused ? "Resume countdown" : "Pause countdown";
  });
  $("save").addEventListener("click", () => {
    if (scenario) download(scenario.text, scenario.filename, "application/x-yaml");
  });
  $("transcript").addEventListener("click", () => {
    if (scenario) download(scenario.transcript, scenario.transcriptFilename, "text/html");
  });
  $("reset").addEventListener("click", () => send({ type: "reset" }));
  $("open-scenario").addEventListener("change", openScenario);
  $("replay-play").addEventListener("click", togglePlaying);
  $("replay-back").addEventListener("click", () => { stopPlaying(); showStep(replay.at - 1); });
  $("replay-forward").addEventListener("click", () => { stopPlaying(); showStep(replay.at + 1); });
  $("replay-speed").addEventListener("change", () => {
    if (replay && replay.timer) { stopPlaying(); togglePlaying(); }
  });
  $("all-edges").addEventListener("change", redraw);
  $("sound").addEventListener("change", () => {
    if (!$("sound").checked && "speechSynthesis" in window) window.speechSynthesis.cancel();
  });
  for (const button of document.querySelectorAll(".key")) {
    button.addEventListener("click", () => press(button.dataset.key));
  }
  document.addEventListener("keydown", (event) => {
    const tag = event.target.tagName;
    if (tag === "INPUT" || tag === "SELECT" || tag === "TEXTAREA" || event.ctrlKey || event.metaKey || event.altKey) return;
    if (KEYS.includes(event.key) && event.key.length === 1) {
      event.preventDefault();
      press(event.key);
    }
  });
  // Leaving or reloading the page hangs its call up: ask first (the browser shows its own dialog).
  window.addEventListener("beforeunload", (event) => {
    if (!running) return;
    event.preventDefault();
    event.returnValue = ""; // older browsers ask only when this is set
  });
  connect();
});
