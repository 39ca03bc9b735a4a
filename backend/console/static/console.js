// Live updates for the agent console: no build step, no framework.
// The server pushes events over /console/live; this page applies them.
(function () {
  "use strict";
  var body = document.body;
  var page = body.dataset.page;
  // A transcript opens at its newest lines, as a chat does.
  var opened = document.getElementById("transcript");
  if (opened) opened.scrollTop = opened.scrollHeight;
  if (page !== "queue" && page !== "chat") return;

  function addEntries(entries) {
    var list = document.getElementById("transcript");
    if (!list) return;
    var empty = list.querySelector(".empty");
    if (empty) empty.remove();
    entries.forEach(function (e) {
      if (list.querySelector('[data-id="' + e.id + '"]')) return;
      var li = document.createElement("li");
      li.className = "msg " + e.direction;
      li.dataset.id = e.id;
      var text = document.createElement("span");
      text.className = "text";
      text.textContent = e.text;  // textContent: customer text is never parsed as HTML
      var time = document.createElement("time");
      time.textContent = e.at;
      li.appendChild(text);
      li.appendChild(time);
      list.appendChild(li);
      body.dataset.after = e.id;
    });
    list.scrollTop = list.scrollHeight;
  }

  function refreshQueue() {
    var box = document.getElementById("queue");
    if (!box) return;
    fetch(box.dataset.src, { credentials: "same-origin" }).then(function (r) {
      if (r.redirected || !r.ok) { location.reload(); return null; }
      return r.text();
    }).then(function (html) { if (html !== null) box.innerHTML = html; });
  }

  // Set once the agent submits a form: a reload for a live event must not cancel
  // the navigation that submission started (hand back, take over, reply).
  var leaving = false;
  document.addEventListener("submit", function () { leaving = true; });
  window.addEventListener("pagehide", function () { leaving = true; });

  var retry = 1000;
  function connect() {
    var url = new URL("/console/live", location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    if (page === "chat") {
      url.searchParams.set("chat", body.dataset.escalation);
      url.searchParams.set("after", body.dataset.after || "0");
    }
    var ws = new WebSocket(url);
    ws.onopen = function () { retry = 1000; body.dataset.live = "on"; };
    ws.onmessage = function (msg) {
      var event = JSON.parse(msg.data);
      if (event.type === "entries") addEntries(event.entries);
      else if (event.type === "queue") refreshQueue();
      else if (event.type === "state" && page === "chat" && !leaving) location.reload();
      else if (event.type === "session_ended") location.assign("/console/login");
    };
    ws.onclose = function () {
      body.dataset.live = "off";
      if (leaving) return;
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 30000);
    };
  }
  connect();
  // Waiting times are written by the server; refresh them once a minute.
  if (page === "queue") setInterval(refreshQueue, 60000);

  // A canned response fills the reply box so the agent can adjust it before sending.
  document.querySelectorAll(".chip[data-text]").forEach(function (chip) {
    chip.addEventListener("click", function (ev) {
      ev.preventDefault();
      var box = document.getElementById("reply-text");
      box.value = chip.dataset.text;
      box.focus();
    });
  });
  var transcript = document.getElementById("transcript");
  if (transcript) transcript.scrollTop = transcript.scrollHeight;
})();
