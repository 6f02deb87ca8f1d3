// Keyboard shortcuts for the review page: 1 / 2 / 3 choose, Enter submits, S skips, U changes
// the last label. Typing in the comment box types; Ctrl+Enter submits from there.
(function () {
  "use strict";
  document.addEventListener("keydown", function (event) {
    var form = document.getElementById("review");
    var typing = event.target && (event.target.tagName === "TEXTAREA" || event.target.tagName === "SELECT");
    if (event.altKey || event.metaKey) return;
    if (typing) {
      if (form && event.key === "Enter" && event.ctrlKey) { event.preventDefault(); submit(form); }
      return;
    }
    if (event.ctrlKey) return;
    var choices = { "1": "choice-left", "2": "choice-right", "3": "choice-tie" };
    if (form && choices[event.key]) {
      document.getElementById(choices[event.key]).checked = true;
      event.preventDefault();
    } else if (form && event.key === "Enter") {
      event.preventDefault();
      submit(form);
    } else if (form && (event.key === "s" || event.key === "S")) {
      event.preventDefault();
      form.requestSubmit(document.getElementById("skip"));
    } else if (event.key === "u" || event.key === "U") {
      var change = document.getElementById("change-last");
      if (change) { event.preventDefault(); window.location.href = change.href; }
    }
  });
  function submit(form) {
    if (!form.querySelector("input[name=choice]:checked")) {
      form.querySelector(".responses").classList.add("needs-choice");
      return;
    }
    form.requestSubmit(document.getElementById("submit"));
  }
})();
