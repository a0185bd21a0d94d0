// Export links carry the page's current query (every view's state is in its URL), so an export is
// exactly what is on screen. Runs in the capture phase, before the browser follows the link.
document.addEventListener('click', function (event) {
    const link = event.target.closest && event.target.closest('a.export-link');
    if (!link) { return; }
    const base = link.getAttribute('href').split('?')[0];
    link.setAttribute('href', base + window.location.search);
}, true);
