// "Copy" buttons: <button type="button" data-copy="full value">. Without JavaScript the full value
// stays in the element's title and in a <details> beside it.
(function () {
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button) return;
    var value = button.getAttribute("data-copy");
    var done = function () {
      button.setAttribute("data-copied", "true");
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = "Copy"; button.removeAttribute("data-copied"); }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(value).then(done, done);
    } else {
      var area = document.createElement("textarea");
      area.value = value;
      document.body.appendChild(area);
      area.select();
      try { document.execCommand("copy"); } catch (e) { /* the value is still in the title */ }
      area.remove();
      done();
    }
  });
})();
