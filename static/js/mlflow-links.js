// MLflow's UI keeps its addresses in the fragment (`/#/experiments/1/runs/<id>`, printed by the
// client after every run, and in users' bookmarks). A fragment never reaches the server, so hand
// it to the page that maps it (tracking.views.mlflow_link), before this page renders.
(function () {
  var hash = window.location.hash;
  var target = document.currentScript && document.currentScript.getAttribute("data-target");
  if (target && hash.charAt(1) === "/") {
    window.location.replace(target + "?route=" + encodeURIComponent(hash.slice(1)));
  }
})();
