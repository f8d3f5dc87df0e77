// The playground: streams /v1/chat/completions with the page's short-lived key. The
// conversation is kept in localStorage only; nothing is sent anywhere but the relay.
(function () {
  "use strict";
  const root = document.getElementById("playground");
  if (!root) return;
  const key = root.dataset.key;
  const base = root.dataset.base;
  const storeKey = "tokenhub.playground.v1";
  const log = document.getElementById("pg-log");
  const form = document.getElementById("pg-form");
  const input = document.getElementById("pg-input");
  const select = document.getElementById("pg-model");
  const send = document.getElementById("pg-send");
  let state = { model: "", messages: [] };
  try {
    state = Object.assign(state, JSON.parse(localStorage.getItem(storeKey) || "{}"));
  } catch (e) { /* a corrupt entry starts afresh */ }

  function save() { localStorage.setItem(storeKey, JSON.stringify(state)); }

  function bubble(role, text) {
    const li = document.createElement("li");
    li.className = "pg-msg pg-" + role;
    li.dataset.role = role;
    li.textContent = text;
    log.appendChild(li);
    return li;
  }

  function render() {
    log.textContent = "";
    for (const m of state.messages) bubble(m.role, m.content);
  }

  async function loadModels() {
    const res = await fetch(base + "/models", { headers: { Authorization: "Bearer " + key } });
    if (!res.ok) { bubble("error", root.dataset.expired); return; }
    const body = await res.json();
    const ids = body.data.map((m) => m.id).sort();
    for (const id of ids) {
      const opt = document.createElement("option");
      opt.value = opt.textContent = id;
      select.appendChild(opt);
    }
    if (ids.includes(state.model)) select.value = state.model;
    state.model = select.value;
  }

  async function ask() {
    const answer = bubble("assistant", "");
    const res = await fetch(base + "/chat/completions", {
      method: "POST",
      headers: { Authorization: "Bearer " + key, "Content-Type": "application/json" },
      body: JSON.stringify({ model: state.model, messages: state.messages, stream: true }),
    });
    if (!res.ok) {
      let message = res.status + "";
      try { message = (await res.json()).error.message; } catch (e) { /* not JSON */ }
      answer.className = "pg-msg pg-error";
      answer.textContent = res.status === 401 ? root.dataset.expired
        : root.dataset.errorPrefix + ": " + message;
      return;
    }
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    let text = "";
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const event = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        for (const line of event.split("\n")) {
          if (!line.startsWith("data:")) continue;
          const data = line.slice(5).trim();
          if (data === "[DONE]") continue;
          try {
            const chunk = JSON.parse(data);
            if (chunk.error) { text += "\n" + root.dataset.errorPrefix + ": " + chunk.error.message; }
            const delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta;
            if (delta && delta.content) text += delta.content;
          } catch (e) { /* a partial or foreign line */ }
        }
        answer.textContent = text;
      }
    }
    state.messages.push({ role: "assistant", content: text });
    save();
  }

  select.addEventListener("change", () => { state.model = select.value; save(); });
  document.getElementById("pg-clear").addEventListener("click", () => {
    state.messages = []; save(); render();
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const content = input.value.trim();
    if (!content || !state.model) return;
    input.value = "";
    state.messages.push({ role: "user", content: content });
    save();
    bubble("user", content);
    send.disabled = true;
    try { await ask(); } finally { send.disabled = false; input.focus(); }
  });
  render();
  loadModels();
})();
