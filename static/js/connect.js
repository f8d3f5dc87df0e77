// Connect page: a copy button beside each snippet. Without JavaScript the buttons stay
// hidden and the snippets are plain text to select.
(function () {
  "use strict";
  const status = document.getElementById("copy-status");

  function fallbackCopy(text) {
    // navigator.clipboard needs a secure context (https or localhost).
    const area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    try { document.execCommand("copy"); } finally { area.remove(); }
  }

  for (const button of document.querySelectorAll("button.copy[data-copy]")) {
    const source = document.getElementById(button.dataset.copy);
    if (!source) continue;
    button.hidden = false;
    button.addEventListener("click", async function () {
      const text = source.textContent;
      try {
        await navigator.clipboard.writeText(text);
      } catch (e) {
        fallbackCopy(text);
      }
      const label = button.textContent;
      button.textContent = status.dataset.copied;
      status.textContent = status.dataset.copied;
      setTimeout(function () { button.textContent = label; }, 1500);
    });
  }
})();
