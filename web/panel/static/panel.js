// lipapush panel: the little behaviour pages need. No inline scripts (the CSP forbids them).
"use strict";
document.addEventListener("submit", (event) => {
  const form = event.target;
  const question = form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) event.preventDefault();
});
// <div data-poll="/admin/exports/ID/progress" data-every="1000">: replaced by the fragment the URL
// returns until the fragment has no data-poll of its own (the job finished).
function poll(el) {
  const url = el.getAttribute("data-poll");
  const every = Number(el.getAttribute("data-every") || 1500);
  setTimeout(async () => {
    try {
      const r = await fetch(url, { headers: { "Accept": "text/html" }, credentials: "same-origin" });
      if (r.ok) {
        const holder = document.createElement("div");
        holder.innerHTML = await r.text();
        const next = holder.firstElementChild;
        if (next) { el.replaceWith(next); if (next.hasAttribute("data-poll")) poll(next); return; }
      }
    } catch (e) { /* network blip: try again */ }
    poll(el);
  }, every);
}
document.addEventListener("DOMContentLoaded", () => document.querySelectorAll("[data-poll]").forEach(poll));
// A recent customer on the pay form fills the phone and name in place; without JS its link reloads
// the page with them filled in.
document.addEventListener("click", (event) => {
  const pick = event.target.closest && event.target.closest("[data-fill-phone]");
  const phone = document.getElementById("phone"), name = document.getElementById("name");
  if (!pick || !phone || !name) return;
  event.preventDefault();
  phone.value = pick.getAttribute("data-fill-phone");
  name.value = pick.getAttribute("data-fill-name") || "";
  document.getElementById("amount").focus();
});
