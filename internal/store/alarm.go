package store

import "fmt"

// AlarmRecord returns the object's stored alarm: its time in Unix
// milliseconds and the retries already made.
func (o *Object) AlarmRecord() (atMs int64, retries int, ok bool, err error) {
	if absent, err := o.absent(); absent || err != nil {
		return 0, 0, false, err
	}
	if err := o.ensure(); err != nil {
		return 0, 0, false, err
	}
	s, err := o.conn.lazy(o, &o.conn.alarmGet, sqlAlarmGet)
	if err != nil {
		return 0, 0, false, err
	}
	o.trusted = true
	defer func() { o.trusted = false }()
	defer s.Reset()
	if !s.Step() {
		if err := s.Err(); err != nil {
			return 0, 0, false, fmt.Errorf("store: get alarm: %w", o.sqlError(err))
		}
		return 0, 0, false, nil
	}
	return s.ColumnInt64(0), int(s.ColumnInt64(1)), true, nil
}

// SetAlarmRecord stores the object's alarm, replacing any; it is part of
// the turn's transaction.
func (o *Object) SetAlarmRecord(atMs int64, retries int) error {
	if err := o.ensure(); err != nil {
		return err
	}
	s, err := o.conn.lazy(o, &o.conn.alarmSet, sqlAlarmSet)
	if err != nil {
		return err
	}
	o.userWrote = true
	o.trusted = true
	defer func() { o.trusted = false }()
	s.BindInt64(1, atMs)
	s.BindInt64(2, int64(retries))
	if err := s.Exec(); err != nil {
		return fmt.Errorf("store: set alarm: %w", o.sqlError(err))
	}
	return nil
}

// DeleteAlarmRecord removes the object's alarm, if any.
func (o *Object) DeleteAlarmRecord() error {
	if absent, err := o.absent(); absent || err != nil {
		return err
	}
	if err := o.ensure(); err != nil {
		return err
	}
	o.userWrote = true
	if err := o.conn.runLazy(o, &o.conn.alarmDel, sqlAlarmDel); err != nil {
		return fmt.Errorf("store: delete alarm: %w", o.sqlError(err))
	}
	o.alarmDel = true
	return nil
}

// TakeAlarmDeleted says whether the alarm record was deleted (by
// DeleteAlarmRecord or DeleteAll) since the last call: the owner then
// removes the node index's entry once the deletion is durable, unless the
// object has an alarm again.
func (o *Object) TakeAlarmDeleted() bool {
	d := o.alarmDel
	o.alarmDel = false
	return d
}

// Meta returns a runtime record of the object (its name, say).
func (o *Object) Meta(key string) ([]byte, bool, error) {
	if absent, err := o.absent(); absent || err != nil {
		return nil, false, err
	}
	if err := o.ensure(); err != nil {
		return nil, false, err
	}
	s, err := o.conn.lazy(o, &o.conn.metaGet, sqlMetaGet)
	if err != nil {
		return nil, false, err
	}
	o.trusted = true
	defer func() { o.trusted = false }()
	defer s.Reset()
	s.BindText(1, key)
	if !s.Step() {
		if err := s.Err(); err != nil {
			return nil, false, fmt.Errorf("store: get meta %q: %w", key, o.sqlError(err))
		}
		return nil, false, nil
	}
	return s.ColumnBlob(0, []byte{}), true, nil
}

// SetMeta stores a runtime record of the object, as part of the turn.
func (o *Object) SetMeta(key string, value []byte) error {
	if err := o.ensure(); err != nil {
		return err
	}
	s, err := o.conn.lazy(o, &o.conn.metaSet, sqlMetaSet)
	if err != nil {
		return err
	}
	o.userWrote = true
	o.trusted = true
	defer func() { o.trusted = false }()
	s.BindText(1, key)
	s.BindBlob(2, value)
	if err := s.Exec(); err != nil {
		return fmt.Errorf("store: set meta %q: %w", key, o.sqlError(err))
	}
	return nil
}
