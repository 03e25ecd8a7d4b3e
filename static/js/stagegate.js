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
  // A modal's Cancel link removes the dialog (without JavaScript it is a link back to the page).
  document.addEventListener("click", function (event) {
    var cancel = event.target.closest("[data-close-dialog]");
    if (!cancel) return;
    var dialog = cancel.closest("dialog");
    if (!dialog) return;
    event.preventDefault();
    dialog.remove();
  });
  // A value to copy (a new API token) is selected whole when focused.
  document.addEventListener("focusin", function (event) {
    if (event.target.matches && event.target.matches("[data-select-on-focus]")) event.target.select();
  });
})();
