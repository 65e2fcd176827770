/* The social layer in the browser: the header bell's live unread count and live comment threads.
   Both only signal; what is shown comes from the server (counts as numbers, threads as escaped HTML). */
(function () {
  "use strict";
  if (window.StudioSocial) return;  // the bell and a comment panel may both load this file
  window.StudioSocial = {};

  function start() {
    if (!window.Studio) return;
    var bell = document.getElementById("notification-bell");
    if (bell && !bell.dataset.live) {
      bell.dataset.live = "1";
      var count = bell.querySelector(".bell-count");
      window.Studio.live(bell.dataset.ws, function (ev) {
        if (ev.type === "unread" && count) {
          var n = Number(ev.count) || 0;
          count.textContent = String(n);
          count.hidden = n === 0;
          bell.title = n ? "Notifications (" + n + " unread)" : "Notifications";
        }
      });
    }
    document.querySelectorAll("[data-comments-ws]").forEach(function (panel) {
      if (panel.dataset.live) return;
      panel.dataset.live = "1";
      var list = panel.querySelector("[hx-get]");
      window.Studio.live(panel.dataset.commentsWs, function (ev) {
        if (ev.type === "comment" && list && window.htmx) window.htmx.trigger(list, "studio-refresh");
      });
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
