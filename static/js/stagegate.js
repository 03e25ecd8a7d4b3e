// Small progressive enhancements; every page works without this file.
(function () {
  // Close the user menu when clicking elsewhere.
  document.addEventListener("click", function (event) {
    document.querySelectorAll("details.usermenu[open]").forEach(function (menu) {
      if (!menu.contains(event.target)) menu.removeAttribute("open");
    });
  });
  // "Select all" checkbox in the runs table.
  document.addEventListener("change", function (event) {
    var all = event.target.closest("[data-select-all]");
    if (!all) return;
    document.querySelectorAll(all.getAttribute("data-select-all")).forEach(function (box) {
      box.checked = all.checked;
    });
  });
})();
