/* Dataset upload with a real progress bar: an XHR posts the form and reports bytes sent.
 * Without JavaScript the same form posts normally and the server redirects or re-renders with the error. */
(function () {
  "use strict";

  function formatBytes(n) {
    var units = ["bytes", "KB", "MB", "GB"], i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
    return (i === 0 ? n : n.toFixed(1)) + " " + units[i];
  }

  function setup(form) {
    var errorBox = form.querySelector("[data-upload-error]");
    var progressBox = form.querySelector("[data-upload-progress]");
    var bar = progressBox.querySelector("progress");
    var label = form.querySelector("[data-upload-label]");
    var submit = form.querySelector("[data-upload-submit]");
    var fileInput = form.querySelector("input[type=file]");

    function showError(message) {
      errorBox.textContent = message;
      errorBox.hidden = false;
      progressBox.hidden = true;
      submit.disabled = false;
    }

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      if (!fileInput.files.length) { showError("Choose a CSV file to upload."); return; }
      var maxBytes = Number(form.dataset.maxBytes || 0);
      if (maxBytes && fileInput.files[0].size > maxBytes) { showError(form.dataset.tooLarge); return; }
      errorBox.hidden = true;
      progressBox.hidden = false;
      bar.value = 0;
      bar.max = 100;
      label.textContent = "Uploading…";
      submit.disabled = true;

      var xhr = new XMLHttpRequest();
      xhr.open("POST", form.action);
      xhr.setRequestHeader("Accept", "application/json");
      xhr.setRequestHeader("X-CSRFToken", form.querySelector("[name=csrfmiddlewaretoken]").value);
      xhr.upload.addEventListener("progress", function (e) {
        if (!e.lengthComputable) return;
        bar.value = Math.round((e.loaded / e.total) * 100);
        label.textContent = formatBytes(e.loaded) + " of " + formatBytes(e.total) + " (" + bar.value + "%)";
      });
      xhr.upload.addEventListener("load", function () {
        // Bytes are all sent; the server now checks and profiles the file in one pass.
        bar.removeAttribute("value");
        label.textContent = "Checking and profiling the file…";
      });
      xhr.addEventListener("load", function () {
        var body = null;
        try { body = JSON.parse(xhr.responseText); } catch (e) { body = null; }
        if (xhr.status >= 200 && xhr.status < 300 && body && body.url) {
          label.textContent = "Done. Opening the dataset…";
          window.location.assign(body.url);
          return;
        }
        showError((body && body.detail) || ("Upload failed (HTTP " + xhr.status + ")."));
      });
      xhr.addEventListener("error", function () {
        showError("The upload was interrupted (network error or the file is over the size limit).");
      });
      xhr.send(new FormData(form));
    });
  }

  document.querySelectorAll("form[data-upload-form]").forEach(setup);
})();
