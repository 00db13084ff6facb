// Progressive enhancement only: every page works without this file (DESIGN §10, A5).
// - Copy buttons: shown only when the clipboard can be written; copy their target's text.
// - Focus: the first element the server marked `autofocus` (an error, a note) gets it even
//   when the browser skipped autofocus (after a fragment navigation, say).
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  for (const button of document.querySelectorAll("button[data-copy]")) {
    if (!navigator.clipboard) continue;
    const target = document.getElementById(button.dataset.copy);
    const said = button.parentElement.querySelector(".copied");
    button.hidden = false;
    button.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(target.textContent.trim());
        if (said) said.textContent = "Copied.";
      } catch {
        if (said) said.textContent = "Copy failed: select the text and copy it.";
      }
    });
  }
  const first = document.querySelector("[autofocus]");
  if (first && document.activeElement !== first) first.focus();
});
