// campushub in JupyterLab: how long a Slurm session has left, in the status bar; warnings at the
// minutes the site chose; every open document saved shortly before the job's time limit.
// The server extension (campushub.server.lab_session) says when the job ends; it says nothing for servers
// that have no end (other backends), and then this shows nothing.
import { Notification } from '@jupyterlab/apputils';
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';
import { IStatusBar } from '@jupyterlab/statusbar';
import { Widget } from '@lumino/widgets';

const REFRESH_MS = 60 * 1000; // the time limit can change (scontrol update): ask again this often

async function fetchSession() {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, 'campushub', 'session');
  const response = await ServerConnection.makeRequest(url, {}, settings);
  return response.ok ? response.json() : null;
}

function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const pad = n => String(n).padStart(2, '0');
  return h ? `${h}:${pad(m)}:${pad(s % 60)}` : `${m}:${pad(s % 60)}`;
}

const plugin = {
  id: 'campushub-session:time-left',
  description: "A Slurm session's time left, warnings before its end, and a save of every open document.",
  autoStart: true,
  optional: [IStatusBar],
  activate: async (app, statusBar) => {
    let session = await fetchSession().catch(() => null);
    if (!session || !session.ends_at) {
      return;
    }
    const widget = new Widget();
    widget.addClass('campushub-time-left');
    widget.node.title = `Slurm job ${session.job}: the session ends at its time limit`;
    if (statusBar) {
      statusBar.registerStatusItem('campushub-session:time-left', { item: widget, align: 'left', rank: 5 });
    }
    const warned = new Set();
    let saved = false;
    let asked = Date.now();
    const tick = async () => {
      if (Date.now() - asked > REFRESH_MS) {
        asked = Date.now();
        session = (await fetchSession().catch(() => null)) || session;
      }
      const left = session.ends_at - Date.now() / 1000;
      widget.node.textContent = `Time left: ${clock(left)}`;
      for (const minutes of session.warn_minutes) {
        if (left > 0 && left <= minutes * 60 && !warned.has(minutes)) {
          warned.add(minutes);
          Notification.warning(
            `This session ends in ${Math.ceil(left / 60)} min, at the Slurm job's time limit. ` +
              'Save your work; open documents are saved just before the end.',
            { autoClose: false }
          );
        }
      }
      if (!saved && left <= session.save_seconds) {
        saved = true;
        await app.commands.execute('docmanager:save-all');
        Notification.info('Saved every open document: this session is about to end.', { autoClose: false });
      }
    };
    await tick();
    setInterval(tick, 1000);
  }
};

export default plugin;
